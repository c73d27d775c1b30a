package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func (a *app) projectsCmd() *cobra.Command {
	return group("projects", "List, create and show projects",
		a.projectsListCmd(), a.projectsCreateCmd(), a.projectsGetCmd())
}

// pageFlags are --page-size and --page-token of a listing (docs/rest.md, "Pagination").
type pageFlags struct {
	size  int
	token string
}

func (p *pageFlags) add(c *cobra.Command) {
	c.Flags().IntVar(&p.size, "page-size", 0, "at most this many (1 to 100; the API's default 50)")
	c.Flags().StringVar(&p.token, "page-token", "", "the next page, as the previous listing said")
}

func (p *pageFlags) query(q url.Values) {
	if p.size > 0 {
		q.Set("page_size", fmt.Sprint(p.size))
	}
	setIf(q, "page_token", p.token)
}

func (a *app) projectsListCmd() *cobra.Command {
	var page pageFlags
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the account's projects",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			page.query(q)
			raw, printed, err := a.show(cmd.Context(), "/v1/projects", q)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Projects []project `json:"projects"`
				Next     string    `json:"next_page_token"`
			}](raw)
			if err != nil {
				return err
			}
			w := a.table("ID", "NAME", "ENVIRONMENTS", "ALLOWED ORIGINS", "CREATED")
			for _, p := range answer.Projects {
				row(w, p.ID, p.Name, list(p.Environments), list(p.AllowedOrigins), when(p.CreatedAt))
			}
			a.moreHint(answer.Next)
			return w.Flush()
		},
	}
	page.add(c)
	return c
}

func (a *app) projectsCreateCmd() *cobra.Command {
	var envs, origins []string
	var idem string
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project",
		Long: `create makes a project. Its environments default to dev, stg and prd. Under a key
profile with one key per project the answer holds that key's secret, shown once.`,
		Example: `  latchkey projects create web-app --allowed-origin https://app.example.com`,
		Args:    exactArgs(1, "one argument, the project's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0]}
			if len(envs) > 0 {
				body["environments"] = envs
			}
			if len(origins) > 0 {
				body["allowed_origins"] = origins
			}
			raw, err := cl.call(cmd.Context(), http.MethodPost, "/v1/projects", nil, body, idempotency(idem))
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); done {
				return err
			}
			answer, err := get[struct {
				Project project `json:"project"`
				Key     *key    `json:"key"`
				Secret  string  `json:"secret"`
			}](raw)
			if err != nil {
				return err
			}
			p := answer.Project
			a.printf("Created project %s (%s), environments %s.\n", p.ID, p.Name, list(p.Environments))
			if answer.Key != nil && answer.Secret != "" {
				a.showSecret(*answer.Key, answer.Secret)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&envs, "environment", nil, "an environment (repeat or comma-separate; default dev,stg,prd)")
	c.Flags().StringSliceVar(&origins, "allowed-origin", nil, "a browser origin the project's keys may be used from (repeat or comma-separate)")
	c.Flags().StringVar(&idem, "idempotency-key", "", "a retry with the same value and body gets the first answer and makes nothing")
	return c
}

func (a *app) projectsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a project",
		Args:  exactArgs(1, "one argument, the project's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, printed, err := a.show(cmd.Context(), "/v1/projects/"+url.PathEscape(args[0]), nil)
			if err != nil || printed {
				return err
			}
			answer, err := get[struct {
				Project project `json:"project"`
			}](raw)
			if err != nil {
				return err
			}
			p := answer.Project
			return a.fields("id", p.ID, "name", p.Name, "environments", list(p.Environments),
				"allowed origins", list(p.AllowedOrigins), "created", when(p.CreatedAt))
		},
	}
}

// idempotency is the Idempotency-Key header of v, none when empty.
func idempotency(v string) http.Header {
	if v == "" {
		return nil
	}
	return http.Header{"Idempotency-Key": {v}}
}
