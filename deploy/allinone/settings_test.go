package allinone

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// settingsRow is one row of a README settings table: the variables it names and the
// default each is given (backticked values, in order; none when the default is prose).
type settingsRow struct {
	vars     []string
	defaults []string
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeSettings parses the tables of README.md's "## Settings" section, keyed by the
// line that introduces each ("accounts (`services/accounts`):").
func readmeSettings(t *testing.T) map[string][]settingsRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "\n## Settings\n")
	require.True(t, ok, "README.md has a Settings section")
	section, _, _ = strings.Cut(section, "\n## ")
	tables := map[string][]settingsRow{}
	var title string
	for line := range strings.SplitSeq(section, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "|"):
			title = strings.TrimSuffix(line, ":")
		case strings.HasPrefix(line, "| `"):
			cells := strings.Split(line, "|")
			require.GreaterOrEqual(t, len(cells), 4, line)
			row := settingsRow{}
			for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
				row.vars = append(row.vars, m[1])
			}
			for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
				row.defaults = append(row.defaults, m[1])
			}
			tables[title] = append(tables[title], row)
		}
	}
	return tables
}

// TestREADMESettingsTables holds every settings table of the README against the struct
// that reads those settings: the same variables, none missing on either side, and every
// default written in the struct's tags shown as such in the README. The README and the
// code stay one source of truth.
func TestREADMESettingsTables(t *testing.T) {
	configs := map[string]any{
		"`make run` (deploy/allinone)":               &Options{},
		"accounts (`services/accounts`)":             &accounts.Config{},
		"keys (`services/keys`)":                     &keys.Config{},
		"ingest-gateway (`services/ingest-gateway`)": &gateway.Config{},
		"audit (`services/audit`)":                   &audit.Config{},
	}
	tables := readmeSettings(t)
	titles := make([]string, 0, len(tables))
	for title := range tables {
		titles = append(titles, title)
	}
	wantTitles := make([]string, 0, len(configs))
	for title := range configs {
		wantTitles = append(wantTitles, title)
	}
	require.ElementsMatch(t, wantTitles, titles, "the README's settings tables")

	for title, cfg := range configs {
		t.Run(title, func(t *testing.T) {
			vars, err := settings.Vars(cfg)
			require.NoError(t, err)
			read := map[string]settings.Var{}
			for _, v := range vars {
				read[v.Name] = v
			}
			var documented []string
			for _, row := range tables[title] {
				for i, name := range row.vars {
					require.False(t, slices.Contains(documented, name), "the README's table names %s twice (one row per variable)", name)
					documented = append(documented, name)
					v, ok := read[name]
					require.True(t, ok, "the README names %s, which the configuration does not read", name)
					if !v.HasDefault {
						continue
					}
					require.Len(t, row.defaults, len(row.vars), "the README shows %s's default, %q", name, v.Default)
					require.Equal(t, v.Default, row.defaults[i], "%s's default", name)
				}
			}
			for name := range read {
				require.True(t, slices.Contains(documented, name), "the configuration reads %s, which the README's table does not name", name)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	defaults := Options{HTTPAddr: "127.0.0.1:8080", PepperFile: ".cache/dev-pepper", SigningKeyFile: ".cache/dev-audit-signing-key"}
	testutil.RequireEnvCases(t, OptionsFromEnv, defaults,
		testutil.EnvCase[Options]{Name: "defaults"},
		testutil.EnvCase[Options]{Name: "every variable", Env: map[string]string{
			"LATCHKEY_HTTP_ADDR": "0.0.0.0:8080", "DATABASE_URL": "postgres://db/dev", "NATS_URL": "nats://n:4222",
			"LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef", "LATCHKEY_PEPPER": "p", "LATCHKEY_PEPPER_FILE": "/tmp/pepper",
			"LATCHKEY_SERVICES": "accounts, keys", "LATCHKEY_LOG_LEVEL": "debug", "LATCHKEY_LOG_FORMAT": "json",
		}, Want: func(o *Options) {
			o.HTTPAddr, o.DatabaseURL, o.NATSURL = "0.0.0.0:8080", "postgres://db/dev", "nats://n:4222"
			o.OperatorToken, o.Pepper, o.PepperFile = "0123456789abcdef", "p", "/tmp/pepper"
			o.Services = []string{"accounts", "keys"}
			o.Log = logging.Config{Level: zapcore.DebugLevel, Format: logging.JSON}
		}},
	)
}

// Every bad value is reported at once, by variable; an unknown service is named.
func TestOptionsFromEnvBadValues(t *testing.T) {
	testutil.ClearSettings(t, &Options{})
	t.Setenv("LATCHKEY_SERVICES", "accounts,billing")
	t.Setenv("LATCHKEY_LOG_LEVEL", "loud")
	t.Setenv("LATCHKEY_LOG_FORMAT", "pretty")
	_, err := OptionsFromEnv()
	for _, want := range []string{`unknown service "billing"`, "LATCHKEY_LOG_LEVEL", "LATCHKEY_LOG_FORMAT"} {
		require.ErrorContains(t, err, want)
	}
}
