package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func (a *app) loginCmd() *cobra.Command {
	var email string
	c := &cobra.Command{
		Use:   "login --api URL --email EMAIL",
		Short: "Log in and keep the session for later commands",
		Long: `login signs in to a Latchkey API with your email and password and keeps the session
token in latchkey/session.json under your configuration directory (` + "`$XDG_CONFIG_HOME`" + ` or
~/.config on Linux), readable by you only (0600, in a 0700 directory).

The password is read from ` + EnvPassword + ` when set, else from standard input: typed
at a prompt without echo, or piped. It is never a flag, so it stays out of shell
history and process listings.`,
		Example: `  latchkey login --api http://127.0.0.1:8080 --email you@example.com
  printf '%s' "$PASSWORD" | latchkey login --email you@example.com`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" {
				return usageError{fmt.Errorf("login needs --email")}
			}
			api := a.api
			if api == "" {
				api = os.Getenv(EnvAPI)
			}
			if api == "" {
				api = DefaultAPI
			}
			api, err := normalAPI(api)
			if err != nil {
				return err
			}
			password, err := a.password()
			if err != nil {
				return err
			}
			return a.login(cmd.Context(), api, email, password)
		},
	}
	c.Flags().StringVar(&email, "email", "", "your account's email")
	return c
}

// password reads the password: LATCHKEY_PASSWORD, else a prompt on a terminal, else the
// first line of standard input.
func (a *app) password() (string, error) {
	if p := os.Getenv(EnvPassword); p != "" {
		return p, nil
	}
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) { //nolint:gosec // a descriptor fits an int
		_, _ = fmt.Fprint(a.stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd())) //nolint:gosec // a descriptor fits an int
		_, _ = fmt.Fprintln(a.stderr)
		return string(b), err
	}
	line, err := a.firstLine("the password")
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usageError{fmt.Errorf("no password: pipe it to standard input or set %s", EnvPassword)}
	}
	return line, nil
}

// loginAnswer is the part of POST /v1/sessions' answer login reads.
type loginAnswer struct {
	Session struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"session"`
	User struct {
		Email string `json:"email"`
	} `json:"user"`
	Account struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"account"`
}

func (a *app) login(ctx context.Context, api, email, password string) error {
	raw, err := newClient(api, "").call(ctx, http.MethodPost, "/v1/sessions", nil, map[string]string{"email": email, "password": password}, nil)
	if err != nil {
		return err
	}
	answer, err := get[loginAnswer](raw)
	if err != nil {
		return err
	}
	file, err := saveSession(&session{API: api, Email: answer.User.Email, Token: answer.Session.Token, ExpiresAt: answer.Session.ExpiresAt})
	if err != nil {
		return fmt.Errorf("logged in, but the session could not be kept: %w", err)
	}
	if a.json {
		// The answer holds the session token, which belongs in the file only.
		out, _ := json.Marshal(map[string]any{"api": api, "email": answer.User.Email, "account_id": answer.Account.ID, "account_name": answer.Account.Name, "expires_at": answer.Session.ExpiresAt, "session_file": file})
		return a.writeJSON(out)
	}
	a.printf("Logged in to %s as %s (account %s, %s); session kept in %s until %s.\n",
		api, answer.User.Email, answer.Account.Name, answer.Account.ID, file, answer.Session.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session and forget it",
		Long: `logout ends the login's session on the server (DELETE /v1/sessions/current) and removes
the session file. The file is removed even when the server cannot be told (unreachable, or
the file unreadable): then logout says so and exits 1, since the session may stay live on
the server until it expires.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, loadErr := loadSession()
			if loadErr == nil && s == nil {
				a.printf("Not logged in.\n")
				return nil
			}
			var endErr error
			switch {
			case loadErr != nil:
				endErr = loadErr
			case s.expired():
				// Nothing to end on the server.
			default:
				_, err := newClient(s.API, s.Token).call(cmd.Context(), http.MethodDelete, "/v1/sessions/current", nil, nil, nil)
				var apiErr *APIError
				if err != nil && (!errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized) {
					endErr = err // an ended session (401) is as good as ended
				}
			}
			if err := removeSession(); err != nil {
				return err
			}
			if endErr != nil {
				_, _ = fmt.Fprintf(a.stderr, "latchkey: %v\nThe session file is removed, but the server was not told: the session may stay live until it expires.\n", endErr)
				return exitStatus(1)
			}
			a.printf("Logged out of %s.\n", s.API)
			return nil
		},
	}
}
