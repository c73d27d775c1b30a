package keyformat

import (
	"strings"
	"testing"
)

// Each built-in profile names the variable and the file of the SDKs it reproduces.
func TestProfileSDK(t *testing.T) {
	want := map[string]SDK{
		"default":    {APIKeyEnv: "LATCHKEY_API_KEY", AnonKeyFile: ".latchkey/anon_key"},
		"typed":      {APIKeyEnv: "GLASSTRACE_API_KEY", AnonKeyFile: ".glasstrace/anon_key"},
		"envkeys":    {APIKeyEnv: "TRACELOOP_API_KEY"},
		"deeptracer": {APIKeyEnv: "DEEPTRACER_KEY"},
		"lumiqtrace": {APIKeyEnv: "LUMIQTRACE_API_KEY"},
		"gmk":        {APIKeyEnv: "GLASSMKR_API_KEY"},
	}
	ps := profiles(t)
	if len(ps) != len(want) {
		t.Fatalf("profiles %v; this test knows %d", ProfileNames(), len(want))
	}
	for name, r := range ps {
		if got := r.SDK(); got != want[name] {
			t.Errorf("profile %q: SDK() = %+v, want %+v", name, got, want[name])
		}
	}
}

// A profile file without "sdk" gets Latchkey's own settings: the variable always, the file
// only when it has an anonymous type.
func TestProfileSDKDefaults(t *testing.T) {
	ingest := `{"name":"ingest","prefix":"a_","encoding":"hex","random_bytes":16,"capabilities":["ingest"],"scope":"project"}`
	account := `{"name":"account","prefix":"b_","encoding":"hex","random_bytes":16,"capabilities":["keys:write"],"scope":"account"}`
	anon := `{"name":"anon","prefix":"c_","encoding":"hex","random_bytes":16,"capabilities":["ingest"],"scope":"environment","anonymous":true}`
	r, err := LoadProfile(writeProfile(t, `{"types":[`+ingest+`,`+account+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.SDK(); got != (SDK{APIKeyEnv: DefaultAPIKeyEnv}) {
		t.Errorf("SDK() of a profile without anonymous type = %+v", got)
	}
	r, err = LoadProfile(writeProfile(t, `{"sdk":{"api_key_env":"MY_KEY"},"types":[`+ingest+`,`+account+`,`+anon+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.SDK(); got != (SDK{APIKeyEnv: "MY_KEY", AnonKeyFile: DefaultAnonKeyFile}) {
		t.Errorf("SDK() = %+v", got)
	}
	r, err = LoadProfile(writeProfile(t, `{"sdk":{"anon_key_file":"var/lk/key"},"types":[`+ingest+`,`+account+`,`+anon+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.SDK(); got != (SDK{APIKeyEnv: DefaultAPIKeyEnv, AnonKeyFile: "var/lk/key"}) {
		t.Errorf("SDK() = %+v", got)
	}
}

func TestProfileSDKRejects(t *testing.T) {
	ingest := `{"name":"ingest","prefix":"a_","encoding":"hex","random_bytes":16,"capabilities":["ingest"],"scope":"project"}`
	account := `{"name":"account","prefix":"b_","encoding":"hex","random_bytes":16,"capabilities":["keys:write"],"scope":"account"}`
	anon := `{"name":"anon","prefix":"c_","encoding":"hex","random_bytes":16,"capabilities":["ingest"],"scope":"environment","anonymous":true}`
	withAnon := func(sdk string) string {
		return `{"sdk":` + sdk + `,"types":[` + ingest + `,` + account + `,` + anon + `]}`
	}
	tests := []struct {
		name, body, want string
	}{
		{"lower-case variable", withAnon(`{"api_key_env":"my_key"}`), `api_key_env "my_key" must match`},
		{"variable with a dash", withAnon(`{"api_key_env":"MY-KEY"}`), `api_key_env "MY-KEY" must match`},
		{"variable starting with a digit", withAnon(`{"api_key_env":"1KEY"}`), `must match`},
		{"absolute file", withAnon(`{"anon_key_file":"/etc/key"}`), `must be a relative path`},
		{"backslashes", withAnon(`{"anon_key_file":"a\\key"}`), `must be a relative path`},
		{"drive letter", withAnon(`{"anon_key_file":"C:key"}`), `must be a relative path`},
		{"parent directory", withAnon(`{"anon_key_file":"../key"}`), `no ".."`},
		{"only parent", withAnon(`{"anon_key_file":".."}`), `no ".."`},
		{"inner parent", withAnon(`{"anon_key_file":"a/../../key"}`), `must be a clean path`},
		{"unclean", withAnon(`{"anon_key_file":"./a//key"}`), `must be a clean path`},
		{"a directory", withAnon(`{"anon_key_file":"."}`), `must be a clean path`},
		{"file without anonymous type", `{"sdk":{"anon_key_file":"k"},"types":[` + ingest + `,` + account + `]}`, `applies only to a profile with an anonymous type`},
		{"unknown field", withAnon(`{"api_key_var":"X"}`), `unknown field "api_key_var"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadProfile(writeProfile(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadProfile error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
