package chain

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kinds of checkpoint.
const (
	// KindHead vouches that the event at Sequence of the account's chain has hash Hash.
	KindHead = "head"
	// KindCut records where retention legitimately cut the chain: every event before
	// Sequence was deleted, and Hash is the prev_hash of the event at Sequence (the hash
	// of the last event deleted).
	KindCut = "cut"
)

// checkpointVersion starts the signed bytes, so no other message can be mistaken for one.
const checkpointVersion = "latchkey.audit.checkpoint.v1"

// Checkpoint is a signed statement about an account's chain, made by the audit service
// with a key the database never holds, so that a database superuser who rewrites or
// removes events cannot make a chain verify: rewritten events no longer match a head
// checkpoint, and the oldest events can only go missing where a cut checkpoint says
// retention deleted them. Accounts fetch their checkpoints (ListCheckpoints) and may keep
// them to check the log later against what they kept.
type Checkpoint struct {
	AccountID string
	Kind      string
	Sequence  int64
	Hash      string
	SignedAt  time.Time
	// PublicKey and Signature are standard base64 (with padding) of the Ed25519 public
	// key and of the signature over Message.
	PublicKey string
	Signature string
}

// Message is what is signed: the version tag, kind, account_id, sequence (decimal),
// hash and signed_at (FormatTime), each as a 4-byte big-endian length and the bytes.
func (c *Checkpoint) Message() []byte {
	b := make([]byte, 0, 192)
	for _, s := range [...]string{checkpointVersion, c.Kind, c.AccountID, strconv.FormatInt(c.Sequence, 10), c.Hash, FormatTime(c.SignedAt)} {
		b = appendField(b, s)
	}
	return b
}

// Signer signs and checks checkpoints with one Ed25519 key.
type Signer struct {
	key    ed25519.PrivateKey
	public string
}

// SeedLen is the length of an Ed25519 seed, the form a signing key is configured in.
const SeedLen = ed25519.SeedSize

// NewSigner returns a signer for an Ed25519 seed of SeedLen bytes.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != SeedLen {
		return nil, fmt.Errorf("an Ed25519 signing key is a %d-byte seed, not %d bytes", SeedLen, len(seed))
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub, _ := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, public: base64.StdEncoding.EncodeToString(pub)}, nil
}

// DeriveSeed derives a signing seed from a secret (the operator token) with HKDF-SHA-256,
// for deployments that configure no signing key of their own.
func DeriveSeed(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("no secret to derive a signing key from")
	}
	return hkdf.Key(sha256.New, []byte(secret), []byte("latchkey.audit"), "checkpoint signing key v1", SeedLen)
}

// PublicKey is the signer's public key, standard base64.
func (s *Signer) PublicKey() string { return s.public }

// Sign fills in c's PublicKey and Signature.
func (s *Signer) Sign(c *Checkpoint) {
	c.PublicKey = s.public
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, c.Message()))
}

// Valid reports whether c was signed by this signer's key.
func (s *Signer) Valid(c *Checkpoint) bool {
	if c.PublicKey != s.public {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil {
		return false
	}
	pub, _ := s.key.Public().(ed25519.PublicKey)
	return ed25519.Verify(pub, c.Message(), sig)
}
