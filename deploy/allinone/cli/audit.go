package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/spf13/cobra"
)

func (a *app) auditCmd() *cobra.Command {
	return group("audit", "Read and check the account's audit log", a.auditTailCmd(), a.auditVerifyCmd())
}

// auditFilters are the filters of GET /v1/audit/events.
type auditFilters struct {
	keyID, resourceType, resourceID, action, result, accountID string
}

func (f *auditFilters) add(c *cobra.Command) {
	c.Flags().StringVar(&f.keyID, "key", "", "only events made with this key's id")
	c.Flags().StringVar(&f.resourceType, "resource-type", "", "only events on this kind of resource (key, project, server, …)")
	c.Flags().StringVar(&f.resourceID, "resource", "", "only events on this resource id")
	c.Flags().StringVar(&f.action, "action", "", "only this action (keys.revoke, accounts.signup, …)")
	c.Flags().StringVar(&f.result, "result", "", "only this result (ok, or the error code the caller got)")
	c.Flags().StringVar(&f.accountID, "account", "", "the account to read (the operator token only)")
}

func (f *auditFilters) query(q url.Values) {
	setIf(q, "key_id", f.keyID)
	setIf(q, "resource_type", f.resourceType)
	setIf(q, "resource_id", f.resourceID)
	setIf(q, "action", f.action)
	setIf(q, "result", f.result)
	setIf(q, "account_id", f.accountID)
}

// tailLookback is how far behind the newest event seen a follow keeps looking: events are
// listed by the time they happened, and one may reach the audit log after a later one.
const tailLookback = time.Minute

// tailPages bounds the pages one poll reads while catching up (100 events each).
const tailPages = 10

func (a *app) auditTailCmd() *cobra.Command {
	var filters auditFilters
	var last int
	var follow bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print the latest audit events, and with --follow the new ones as they come",
		Long: `tail prints the account's latest audit events, oldest first, and with --follow keeps
polling (GET /v1/audit/events, paging by cursor) and prints each new event once, until
Ctrl-C. With --json each event is one line of the API's JSON.`,
		Example: `  latchkey audit tail --follow --action keys.revoke
  latchkey audit tail --resource key_01… --json | jq -r .actor`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if last < 1 || last > 1000 {
				return usageError{fmt.Errorf("--last %d is not between 1 and 1000", last)}
			}
			if interval < 100*time.Millisecond {
				return usageError{fmt.Errorf("--interval %s is under 100ms", interval)}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			t := &tailer{app: a, cl: cl, filters: filters, seen: map[string]time.Time{}}
			if err := t.poll(cmd.Context(), last, 1, true); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			// What happened before, beyond --last, is not news: mark it seen unprinted.
			if err := t.poll(cmd.Context(), 100, tailPages, false); err != nil {
				return err
			}
			_, _ = fmt.Fprintln(a.stderr, "(following new events; Ctrl-C stops)")
			return t.follow(cmd.Context(), interval)
		},
	}
	filters.add(c)
	c.Flags().IntVarP(&last, "last", "n", 20, "how many of the latest events to print first (1 to 1000)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until Ctrl-C")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --follow asks for new events")
	return c
}

// maxFollowBackoff caps the wait between the polls of a follow while the API fails.
const maxFollowBackoff = 30 * time.Second

// follow polls every interval until ctx ends (Ctrl-C, not a failure). While the API cannot
// be reached or fails (a connection error, 5xx, 429: what may pass), it retries with
// exponential backoff from interval up to maxFollowBackoff, saying so on standard error
// once per outage; an answer that will not change by retrying (401, 403, 400) ends it.
func (t *tailer) follow(ctx context.Context, interval time.Duration) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = interval, maxFollowBackoff
	wait, failing := interval, false
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil // Ctrl-C: done, not failed
		case <-timer.C:
		}
		err := t.poll(ctx, 100, tailPages, true)
		var apiErr *APIError
		switch {
		case err == nil:
			if failing {
				_, _ = fmt.Fprintln(t.stderr, "(the API answers again; following)")
			}
			wait, failing = interval, false
			b.Reset()
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &apiErr) && apiErr.Status != http.StatusTooManyRequests && apiErr.Status < 500:
			return err
		default:
			if !failing {
				_, _ = fmt.Fprintf(t.stderr, "latchkey: %v\n(retrying with backoff, up to every %s; Ctrl-C stops)\n", err, maxFollowBackoff)
			}
			wait, failing = b.NextBackOff(), true
		}
	}
}

// tailer prints the events it has not printed yet.
type tailer struct {
	*app
	cl      *client
	filters auditFilters
	// seen holds the ids printed, with their times, back to tailLookback before newest.
	seen   map[string]time.Time
	newest time.Time
	// headed: the table's header is printed (after the first answer, never before).
	headed bool
}

// poll reads up to pages pages of limit events, newest first, until it reaches events
// older than the lookback, and prints the unseen ones oldest first (when show; else it
// only marks them seen).
func (t *tailer) poll(ctx context.Context, limit, pages int, show bool) error {
	var fresh []json.RawMessage
	var times []auditEvent
	cursor := ""
	horizon := t.newest.Add(-tailLookback)
	for range pages {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		t.filters.query(q)
		setIf(q, "cursor", cursor)
		raw, err := t.cl.call(ctx, http.MethodGet, "/v1/audit/events", q, nil, nil)
		if err != nil {
			return err
		}
		page, err := get[struct {
			Events []json.RawMessage `json:"events"`
			Next   string            `json:"next_cursor"`
		}](raw)
		if err != nil {
			return err
		}
		old := false
		for _, r := range page.Events {
			e, err := get[auditEvent](r)
			if err != nil {
				return err
			}
			if e.Time == nil {
				e.Time = &time.Time{}
			}
			if !t.newest.IsZero() && e.Time.Before(horizon) {
				old = true
				break
			}
			if _, ok := t.seen[e.ID]; ok {
				continue
			}
			fresh, times = append(fresh, r), append(times, e)
		}
		if old || page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if show && !t.json && !t.headed {
		// Only now, after an answer: an error leaves standard output empty.
		t.printf("%-19s  %-24s  %-18s  %-30s  %-34s  %s\n", "TIME (UTC)", "ACTION", "RESULT", "ACTOR", "RESOURCE", "REQUEST ID")
		t.headed = true
	}
	order := make([]int, len(fresh))
	for i := range order {
		order[i] = len(fresh) - 1 - i // the listing is newest first
	}
	sort.SliceStable(order, func(i, j int) bool { return times[order[i]].Time.Before(*times[order[j]].Time) })
	for _, i := range order {
		e := times[i]
		if show {
			if err := t.print(fresh[i], e); err != nil {
				return err
			}
		}
		t.seen[e.ID] = *e.Time
		if e.Time.After(t.newest) {
			t.newest = *e.Time
		}
	}
	for id, at := range t.seen {
		if at.Before(t.newest.Add(-tailLookback)) {
			delete(t.seen, id)
		}
	}
	return nil
}

func (t *tailer) print(raw json.RawMessage, e auditEvent) error {
	if t.json {
		line, err := json.Marshal(raw) // compact: one event per line
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(t.stdout, "%s\n", line)
		return err
	}
	resource := e.ResourceType
	if e.ResourceID != "" {
		resource += " " + e.ResourceID
	}
	actor := ""
	if e.Actor != nil {
		actor = e.Actor.ID
		if actor == "" {
			actor = e.Actor.Type
		}
	}
	t.printf("%-19s  %-24s  %-18s  %-30s  %-34s  %s\n", when(e.Time), e.Action, e.Result, dash(actor), dash(resource), e.RequestID)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) auditVerifyCmd() *cobra.Command {
	var accountID string
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check the account's audit hash chain against its signed checkpoints (exit 1 when broken)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			setIf(q, "account_id", accountID)
			raw, err := cl.call(cmd.Context(), http.MethodGet, "/v1/audit/verify", q, nil, nil)
			if err != nil {
				return err
			}
			answer, err := get[struct {
				OK            bool   `json:"ok"`
				EventsChecked int    `json:"events_checked"`
				FirstBadID    string `json:"first_bad_id"`
				Problem       string `json:"problem"`
			}](raw)
			if err != nil {
				return err
			}
			if done, err := a.emit(raw); !done {
				if answer.OK {
					a.printf("The audit chain holds: %d events checked.\n", answer.EventsChecked)
				} else {
					a.printf("The audit chain is broken at %s: %s (%d events checked).\n", dash(answer.FirstBadID), answer.Problem, answer.EventsChecked)
				}
			} else if err != nil {
				return err
			}
			if !answer.OK {
				return exitStatus(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&accountID, "account", "", "the account to check (the operator token only)")
	return c
}
