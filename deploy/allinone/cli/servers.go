package cli

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func (a *app) serversCmd() *cobra.Command {
	return group("servers", "Provision a fleet's servers and their collector keys",
		a.serversListCmd(), a.serversCreateCmd(), a.serversGetCmd(), a.serversRotateKeyCmd(), a.serversDeleteCmd())
}

func serverPath(id, suffix string) string { return "/v1/servers/" + url.PathEscape(id) + suffix }

// showServerKey prints a server's new collector key for people, once.
func (a *app) showServerKey(s server) {
	a.printf("Server %s (%s): collector key %s, %s\n", s.ID, s.Name, s.KeyID, prefix(s.KeyDisplayPrefix))
	a.printf("Its key, shown this once (store it on the server now; Latchkey keeps only its hash):\n\n  %s\n\n", s.APIKey)
}

func (a *app) serversListCmd() *cobra.Command {
	var projectID, name, hostname, tag string
	var page pageFlags
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List servers, newest first (deleted ones left out)",
		Example: `  latchkey servers list --tag fra`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			setIf(q, "project_id", projectID)
			setIf(q, "name", name)
			setIf(q, "hostname", hostname)
			setIf(q, "tag", tag)
			page.query(q)
			raw, printed, err := a.show(cmd.Context(), "/v1/servers", q)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Servers []server `json:"servers"`
				Next    string   `json:"next_page_token"`
			}](raw)
			if err != nil {
				return err
			}
			w := a.table("ID", "NAME", "HOSTNAME", "TAGS", "PROJECT", "KEY", "KEY STATUS", "CREATED")
			for _, s := range answer.Servers {
				row(w, s.ID, s.Name, s.Hostname, list(s.Tags), s.ProjectID, prefix(s.KeyDisplayPrefix), s.KeyStatus, when(s.CreatedAt))
			}
			a.moreHint(answer.Next)
			return w.Flush()
		},
	}
	c.Flags().StringVar(&projectID, "project", "", "only this project's servers")
	c.Flags().StringVar(&name, "name", "", "only servers of this name")
	c.Flags().StringVar(&hostname, "hostname", "", "only servers of this hostname")
	c.Flags().StringVar(&tag, "tag", "", "only servers with this tag")
	page.add(c)
	return c
}

func (a *app) serversCreateCmd() *cobra.Command {
	var projectID, hostname, idem string
	var tags []string
	c := &cobra.Command{
		Use:   "create NAME --project ID",
		Short: "Create a server and its collector key, shown once",
		Example: `  latchkey servers create web-1 --project prj_01… --hostname web-1.fra.example.net --tag fra,web \
    --idempotency-key provision-web-1`,
		Args: exactArgs(1, "one argument, the server's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"name": args[0], "project_id": projectID}
			if hostname != "" {
				body["hostname"] = hostname
			}
			if len(tags) > 0 {
				body["tags"] = tags
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, "/v1/servers", nil, body, idempotency(idem))
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Server server `json:"server"`
			}](raw)
			if err != nil {
				return err
			}
			a.showServerKey(answer.Server)
			return nil
		},
	}
	c.Flags().StringVar(&projectID, "project", "", "the project's id")
	c.Flags().StringVar(&hostname, "hostname", "", "the machine's host name")
	c.Flags().StringSliceVar(&tags, "tag", nil, "a tag (repeat or comma-separate)")
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value and body gets the first answer (the key included) and makes nothing")
	return c
}

func (a *app) serversGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a server (never its key)",
		Args:  exactArgs(1, "one argument, the server's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, printed, err := a.show(cmd.Context(), serverPath(args[0], ""), nil)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Server server `json:"server"`
			}](raw)
			if err != nil {
				return err
			}
			s := answer.Server
			return a.fields("id", s.ID, "name", s.Name, "hostname", s.Hostname, "tags", list(s.Tags),
				"project", s.ProjectID, "key", s.KeyID, "key prefix", prefix(s.KeyDisplayPrefix),
				"key status", s.KeyStatus, "created", when(s.CreatedAt))
		},
	}
}

func (a *app) serversRotateKeyCmd() *cobra.Command {
	var idem string
	c := &cobra.Command{
		Use:   "rotate-key ID",
		Short: "Give a server a new collector key, shown once (the old one keeps its grace)",
		Args:  exactArgs(1, "one argument, the server's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, serverPath(args[0], ":rotateKey"), nil, map[string]any{}, idempotency(idem))
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Server   server `json:"server"`
				Previous *key   `json:"previous"`
			}](raw)
			if err != nil {
				return err
			}
			a.showServerKey(answer.Server)
			if answer.Previous != nil {
				a.showPrevious(*answer.Previous)
			}
			return nil
		},
	}
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value gets the first answer (the key included)")
	return c
}

func (a *app) serversDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a server; its keys are revoked at once",
		Args:  exactArgs(1, "one argument, the server's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			raw, err := cl.call(cmd.Context(), http.MethodDelete, serverPath(args[0], ""), nil, nil, nil)
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Server server `json:"server"`
			}](raw)
			if err != nil {
				return err
			}
			a.printf("Deleted server %s (%s) at %s UTC; its keys are revoked.\n", answer.Server.ID, answer.Server.Name, when(answer.Server.DeletedAt))
			return nil
		},
	}
}
