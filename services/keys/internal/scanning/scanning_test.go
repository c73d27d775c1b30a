package scanning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The example of GitHub's secret scanning partner program documentation: a payload, its
// signature and the public key it verifies under. Checking it shows the scheme is GitHub's
// (ECDSA P-256 over the SHA-256 of the raw body, base64 ASN.1 DER), not merely ours.
const (
	githubKeyID     = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"
	githubPayload   = `[{"token":"some_token","type":"some_type","url":"some_url"}]`
	githubSignature = "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc="
	githubPEM       = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq\nkCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\n-----END PUBLIC KEY-----\n"
)

func keysJSON(t *testing.T, entries ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(entries)
	require.NoError(t, err)
	return string(b)
}

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func sign(t *testing.T, key *ecdsa.PrivateKey, body string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sig)
}

func TestGitHubsDocumentedExampleVerifies(t *testing.T) {
	var p PublicKeys
	// GitHub's document as api.github.com/meta/public_keys/secret_scanning answers it.
	doc := `{"public_keys": [{"key_identifier": "` + githubKeyID + `", "key": ` + jsonString(t, githubPEM) + `, "is_current": true}]}`
	require.NoError(t, p.UnmarshalText([]byte(doc)))
	require.Equal(t, []string{githubKeyID}, p.IDs())
	key, err := p.Key(githubKeyID)
	require.NoError(t, err)
	require.NoError(t, Verify(key, githubSignature, []byte(githubPayload)))
	require.ErrorIs(t, Verify(key, githubSignature, []byte(githubPayload+" ")), ErrBadSignature, "one more byte")
	require.ErrorIs(t, Verify(key, githubSignature, []byte(strings.Replace(githubPayload, "some_token", "some_tokeN", 1))), ErrBadSignature)
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}

func TestPublicKeysParse(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	var p PublicKeys
	for _, none := range []string{"", "  ", "[]", `{"public_keys": []}`} {
		require.NoError(t, p.UnmarshalText([]byte(none)), none)
		require.Zero(t, p.Len())
	}
	two := keysJSON(t, map[string]any{"key_identifier": "a", "key": pemOf(t, &k1.PublicKey)},
		map[string]any{"key_identifier": "b", "key": pemOf(t, &k2.PublicKey), "is_current": false})
	require.NoError(t, p.UnmarshalText([]byte(two)))
	require.Equal(t, []string{"a", "b"}, p.IDs())
	got, err := p.Key("b")
	require.NoError(t, err)
	require.True(t, got.Equal(&k2.PublicKey))

	for name, bad := range map[string]string{
		"not JSON":                "key_identifier=a",
		"an object of nothing":    `{"keys": []}`,
		"a string":                `"a"`,
		"no identifier":           keysJSON(t, map[string]any{"key": pemOf(t, &k1.PublicKey)}),
		"empty identifier":        keysJSON(t, map[string]any{"key_identifier": "", "key": pemOf(t, &k1.PublicKey)}),
		"identifier with a space": keysJSON(t, map[string]any{"key_identifier": "a b", "key": pemOf(t, &k1.PublicKey)}),
		"overlong identifier":     keysJSON(t, map[string]any{"key_identifier": strings.Repeat("a", MaxKeyIDLen+1), "key": pemOf(t, &k1.PublicKey)}),
		"no key":                  keysJSON(t, map[string]any{"key_identifier": "a"}),
		"not PEM":                 keysJSON(t, map[string]any{"key_identifier": "a", "key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}),
		"PEM of garbage":          keysJSON(t, map[string]any{"key_identifier": "a", "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}))}),
		"a private key block":     keysJSON(t, map[string]any{"key_identifier": "a", "key": strings.ReplaceAll(pemOf(t, &k1.PublicKey), "PUBLIC", "PRIVATE")}),
		"two PEM blocks":          keysJSON(t, map[string]any{"key_identifier": "a", "key": pemOf(t, &k1.PublicKey) + pemOf(t, &k2.PublicKey)}),
		"P-384":                   keysJSON(t, map[string]any{"key_identifier": "a", "key": pemOf(t, &p384.PublicKey)}),
		"RSA":                     keysJSON(t, map[string]any{"key_identifier": "a", "key": pemOf(t, &rsaKey.PublicKey)}),
		"duplicate identifier": keysJSON(t, map[string]any{"key_identifier": "a", "key": pemOf(t, &k1.PublicKey)},
			map[string]any{"key_identifier": "a", "key": pemOf(t, &k2.PublicKey)}),
	} {
		p = PublicKeys{}
		require.NoError(t, p.UnmarshalText([]byte(two)))
		require.Error(t, p.UnmarshalText([]byte(bad)), name)
		require.Zero(t, p.Len(), "%s: a failed read keeps nothing", name)
	}
}

func TestVerify(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	var p PublicKeys
	require.NoError(t, p.UnmarshalText([]byte(keysJSON(t, map[string]any{"key_identifier": "k1", "key": pemOf(t, &k1.PublicKey)}))))

	body := `[{"token":"x","type":"t","url":"u","source":"content"}]`
	key, err := p.Key("k1")
	require.NoError(t, err)
	require.NoError(t, Verify(key, sign(t, k1, body), []byte(body)))

	for id, want := range map[string]error{"": ErrUnsigned, "k2": ErrUnknownKey, "K1": ErrUnknownKey, "k1 ": ErrUnknownKey, strings.Repeat("k", 300): ErrUnknownKey} {
		_, err := p.Key(id)
		require.ErrorIs(t, err, want, "id %q", id)
	}
	for name, c := range map[string]struct {
		sig  string
		want error
	}{
		"missing":           {"", ErrUnsigned},
		"blank":             {"  ", ErrUnsigned},
		"not base64":        {"not base64!", ErrBadSignature},
		"base64 of garbage": {base64.StdEncoding.EncodeToString([]byte("garbage")), ErrBadSignature},
		"overlong":          {strings.Repeat("A", MaxSignatureLen+4), ErrBadSignature},
		"another key's":     {sign(t, k2, body), ErrBadSignature},
		"of another body":   {sign(t, k1, body+"\n"), ErrBadSignature},
	} {
		require.ErrorIs(t, Verify(key, c.sig, []byte(body)), c.want, name)
	}
}
