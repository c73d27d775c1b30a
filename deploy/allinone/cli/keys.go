package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) keysCmd() *cobra.Command {
	return group("keys", "Create, list, rotate, revoke, verify and import API keys",
		a.keysCreateCmd(), a.keysListCmd(), a.keysGetCmd(), a.keysRotateCmd(), a.keysRevokeCmd(), a.keysVerifyCmd(), a.keysImportCmd())
}

// showSecret prints a new key and its secret for people: the secret on a line of its own,
// once. The command line keeps no copy.
func (a *app) showSecret(k key, secret string) {
	a.printf("Key %s (%s, %s) created: %s\n", k.ID, k.Type, k.Name, prefix(k.DisplayPrefix))
	a.printf("Its secret, shown this once (store it now; Latchkey keeps only its hash):\n\n  %s\n\n", secret)
}

// keyPath is /v1/keys/{id} with suffix (":rotate", …).
func keyPath(id, suffix string) string { return "/v1/keys/" + url.PathEscape(id) + suffix }

func (a *app) keysCreateCmd() *cobra.Command {
	var typ, projectID, env, name, expires, idem string
	var caps []string
	c := &cobra.Command{
		Use:   "create --type TYPE [--project ID --environment ENV] --name NAME",
		Short: "Create a key; its secret is shown once",
		Long: `create mints a key of a type of the server's key profile (latchkey keys create
--type ingest …; GET /v1/key-types lists them). A project key names its project and
environment; an account key (type account) takes --capability instead.

The secret is printed once and never again: Latchkey stores only a keyed hash of it, and
this command line keeps no copy.`,
		Example: `  latchkey keys create --type ingest --project prj_01… --environment prd --name production-web
  latchkey keys create --type ingest --project prj_01… --environment prd --name ci --json | jq -r .secret`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ == "" {
				return usageError{fmt.Errorf("keys create needs --type")}
			}
			body := map[string]any{"type": typ, "name": name}
			for k, v := range map[string]string{"project_id": projectID, "environment": env} {
				if v != "" {
					body[k] = v
				}
			}
			if len(caps) > 0 {
				body["capabilities"] = caps
			}
			if expires != "" {
				at, err := expiry(expires)
				if err != nil {
					return err
				}
				body["expires_at"] = at
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, "/v1/keys", nil, body, idempotency(idem))
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Key    key    `json:"key"`
				Secret string `json:"secret"`
			}](raw)
			if err != nil {
				return err
			}
			a.showSecret(answer.Key, answer.Secret)
			return nil
		},
	}
	c.Flags().StringVar(&typ, "type", "", "the key type (ingest, account, …)")
	c.Flags().StringVar(&projectID, "project", "", "the project's id, for a project key")
	c.Flags().StringVar(&env, "environment", "", "the project's environment (dev, stg, prd, …)")
	c.Flags().StringVar(&name, "name", "", "a name for people")
	c.Flags().StringSliceVar(&caps, "capability", nil, "a capability (repeat or comma-separate; default the type's)")
	c.Flags().StringVar(&expires, "expires", "", "when the key stops working: a duration from now (720h) or an RFC 3339 time")
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value and body gets the first answer (the secret included) and makes nothing")
	return c
}

// expiry reads --expires: a Go duration from now, or an RFC 3339 time.
func expiry(v string) (string, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return "", usageError{fmt.Errorf("--expires %s is not in the future", v)}
		}
		return time.Now().Add(d).UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return "", usageError{fmt.Errorf("--expires %q is neither a duration (720h) nor an RFC 3339 time", v)}
}

func (a *app) keysListCmd() *cobra.Command {
	var projectID, env, typ, status string
	var page pageFlags
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List keys, newest first (display prefixes, never secrets)",
		Example: `  latchkey keys list --project prj_01… --status active`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "project_id", projectID)
			setIf(q, "environment", env)
			setIf(q, "type", typ)
			setIf(q, "status", status)
			page.query(q)
			raw, printed, err := a.show(cmd.Context(), "/v1/keys", q)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Keys []key  `json:"keys"`
				Next string `json:"next_page_token"`
			}](raw)
			if err != nil {
				return err
			}
			w := a.table("ID", "TYPE", "NAME", "PREFIX", "PROJECT", "ENV", "STATUS", "CREATED", "LAST USED")
			for _, k := range answer.Keys {
				row(w, k.ID, k.Type, k.Name, prefix(k.DisplayPrefix), k.ProjectID, k.Environment, k.Status, when(k.CreatedAt), when(k.LastUsedAt))
			}
			a.moreHint(answer.Next)
			return w.Flush()
		},
	}
	c.Flags().StringVar(&projectID, "project", "", "only this project's keys")
	c.Flags().StringVar(&env, "environment", "", "only this environment's keys")
	c.Flags().StringVar(&typ, "type", "", "only keys of this type")
	c.Flags().StringVar(&status, "status", "", "only keys in this status (active, grace, revoked, expired)")
	page.add(c)
	return c
}

func (a *app) keysGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a key",
		Args:  exactArgs(1, "one argument, the key's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, printed, err := a.show(cmd.Context(), keyPath(args[0], ""), nil)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Key key `json:"key"`
			}](raw)
			if err != nil {
				return err
			}
			return a.showKey(answer.Key)
		},
	}
}

// showKey prints one key's fields for people.
func (a *app) showKey(k key) error {
	return a.fields("id", k.ID, "type", k.Type, "name", k.Name, "prefix", prefix(k.DisplayPrefix),
		"status", k.Status, "project", k.ProjectID, "environment", k.Environment, "server", k.ServerID,
		"capabilities", list(k.Capabilities), "created", when(k.CreatedAt), "expires", when(k.ExpiresAt),
		"last used", when(k.LastUsedAt), "grace until", when(k.GraceUntil), "rotated to", k.RotatedToID,
		"revoked", when(k.RevokedAt), "revoke reason", k.RevokeReason, "exposed", when(k.ExposedAt))
}

func (a *app) keysRotateCmd() *cobra.Command {
	var grace time.Duration
	var idem string
	c := &cobra.Command{
		Use:   "rotate ID",
		Short: "Replace a key with a new one; the old one works through a grace period",
		Long: `rotate mints a new key in place of ID and prints its secret once. The old key keeps
working for --grace (the type's grace when not given, 24 hours by default; 0 ends it now).`,
		Example: `  latchkey keys rotate key_01… --grace 1h`,
		Args:    exactArgs(1, "one argument, the key's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("grace") {
				if grace < 0 {
					return usageError{fmt.Errorf("--grace %s is negative", grace)}
				}
				body["grace_period_seconds"] = int64(grace / time.Second)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, keyPath(args[0], ":rotate"), nil, body, idempotency(idem))
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Key      key    `json:"key"`
				Secret   string `json:"secret"`
				Previous key    `json:"previous"`
			}](raw)
			if err != nil {
				return err
			}
			a.showSecret(answer.Key, answer.Secret)
			a.showPrevious(answer.Previous)
			return nil
		},
	}
	c.Flags().DurationVar(&grace, "grace", 0, "how long the old key keeps working (0 to 2160h)")
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value gets the first answer (the secret included)")
	return c
}

func (a *app) keysRevokeCmd() *cobra.Command {
	var reason, idem string
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key, at once and everywhere",
		Long: `revoke ends a key now. With --wait it returns once every live ingest gateway has
dropped it (a revocation receipt), or after --wait-timeout with the count that had; the key
is revoked either way, but an incomplete receipt exits 1, so a script can tell.`,
		Example: `  latchkey keys revoke key_01… --reason "leaked in a log" --wait`,
		Args:    exactArgs(1, "one argument, the key's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"reason": reason, "wait_for_gateways": wait}
			if cmd.Flags().Changed("wait-timeout") {
				body["wait_timeout_ms"] = timeout.Milliseconds()
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, keyPath(args[0], ":revoke"), nil, body, idempotency(idem))
			if err != nil {
				return err
			}
			answer, err := get[struct {
				Key         key      `json:"key"`
				Receipt     *receipt `json:"receipt"`
				Replacement *struct {
					Key    key    `json:"key"`
					Secret string `json:"secret"`
				} `json:"replacement"`
			}](raw)
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); !done {
				a.showRevoked(answer.Key, answer.Receipt, wait)
				if r := answer.Replacement; r != nil {
					a.printf("Its type replaces a revoked key:\n")
					a.showSecret(r.Key, r.Secret)
				}
			} else if err != nil {
				return err
			}
			if r := answer.Receipt; wait && r != nil && !r.Complete {
				_, _ = fmt.Fprintf(a.stderr, "latchkey: the key is revoked, but only %d of %d live gateways confirmed it within the wait\n", r.GatewaysApplied, r.GatewaysLive)
				return exitStatus(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	c.Flags().BoolVar(&wait, "wait", false, "wait until every live gateway has dropped the key")
	c.Flags().DurationVar(&timeout, "wait-timeout", 0, "how long --wait may wait (2s when not given, at most 30s)")
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value gets the first answer")
	return c
}

// showPrevious prints what became of the key a rotation replaced: working until its grace
// ends, or its status (revoked, with no grace).
func (a *app) showPrevious(p key) {
	if p.GraceUntil != nil {
		a.printf("The previous key %s (%s) works until %s UTC.\n", p.ID, prefix(p.DisplayPrefix), when(p.GraceUntil))
		return
	}
	a.printf("The previous key %s (%s) is %s.\n", p.ID, prefix(p.DisplayPrefix), p.Status)
}

// showRevoked prints a revoked key and, after a wait, its receipt.
func (a *app) showRevoked(k key, r *receipt, waited bool) {
	a.printf("Key %s (%s) is %s since %s UTC.\n", k.ID, prefix(k.DisplayPrefix), k.Status, when(k.RevokedAt))
	if r != nil && waited {
		state := "complete"
		if !r.Complete {
			state = "incomplete"
		}
		a.printf("Gateways that dropped it: %d of %d live (%s, waited %d ms).\n", r.GatewaysApplied, r.GatewaysLive, state, r.WaitedMS)
	}
}

// readSecret reads a key from standard input, its first line, for the commands that take
// one: never an argument, which shell history and process listings would keep.
func (a *app) readSecret(what string) (string, error) {
	line, err := a.firstLine(what)
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", usageError{fmt.Errorf("no %s on standard input", what)}
	}
	return line, nil
}

func (a *app) keysVerifyCmd() *cobra.Command {
	var capability, origin string
	c := &cobra.Command{
		Use:   "verify < KEY",
		Short: "Check a key as your backend would (exit 1 when it is not valid)",
		Long: `verify reads a key from standard input and asks the API whether it is valid (POST
/v1/keys:verify), optionally for a capability and a browser origin. It prints the verdict
and the key's id, never the key, and exits 0 when valid, 1 when not.`,
		Example: `  printf '%s' "$SECRET" | latchkey keys verify --capability ingest`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := a.readSecret("key")
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{"key": secret}
			for k, v := range map[string]string{"capability": capability, "origin": origin} {
				if v != "" {
					body[k] = v
				}
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, "/v1/keys:verify", nil, body, nil)
			if err != nil {
				return err
			}
			answer, err := get[struct {
				Valid bool   `json:"valid"`
				Code  string `json:"code"`
				Key   *key   `json:"key"`
			}](raw)
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); !done {
				if answer.Valid {
					a.printf("valid: key %s (%s, %s)\n", answer.Key.ID, answer.Key.Type, prefix(answer.Key.DisplayPrefix))
				} else {
					a.printf("not valid: %s\n", answer.Code)
				}
			} else if err != nil {
				return err
			}
			if !answer.Valid {
				return exitStatus(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&capability, "capability", "", "the capability the key must hold (ingest, …)")
	c.Flags().StringVar(&origin, "origin", "", "the browser origin it is used from")
	return c
}

func (a *app) keysImportCmd() *cobra.Command {
	var typ, projectID, env, serverID, name string
	c := &cobra.Command{
		Use:   "import --type TYPE (--project ID --environment ENV | --server ID) < SECRET",
		Short: "Adopt a key minted elsewhere (read from standard input)",
		Long: `import stores a key made by another system (a legacy prefix's, e.g. gmk's col_) so
that it verifies and ingests like Latchkey's own. The secret is read from standard input,
stored only as its hash and never printed. For a server's key, --server binds it to the
server and its project.`,
		Example: `  printf '%s' "$LEGACY" | latchkey keys import --type ingest --server srv_01… --name "old agent"`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ == "" {
				return usageError{fmt.Errorf("keys import needs --type")}
			}
			secret, err := a.readSecret("secret")
			if err != nil {
				return err
			}
			body := map[string]any{"type": typ, "secret": secret, "name": name}
			for k, v := range map[string]string{"project_id": projectID, "environment": env, "server_id": serverID} {
				if v != "" {
					body[k] = v
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, "/v1/keys:import", nil, body, nil)
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Key key `json:"key"`
			}](raw)
			if err != nil {
				return err
			}
			k := answer.Key
			a.printf("Imported key %s (%s, %s): %s\n", k.ID, k.Type, k.Name, prefix(k.DisplayPrefix))
			return nil
		},
	}
	c.Flags().StringVar(&typ, "type", "", "the key type")
	c.Flags().StringVar(&projectID, "project", "", "the project's id")
	c.Flags().StringVar(&env, "environment", "", "the project's environment")
	c.Flags().StringVar(&serverID, "server", "", "the server the key belongs to (its project is taken)")
	c.Flags().StringVar(&name, "name", "", "a name for people")
	return c
}
