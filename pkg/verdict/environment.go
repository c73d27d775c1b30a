package verdict

import "time"

// Environments is what a project says about its environments: every name it lists now,
// each with the instant it was last added (the project's environments_added_at), or the
// zero time for one listed since before Latchkey recorded that (docs/keys.md,
// "Environments").
type Environments map[string]time.Time

// Holds says whether a key bound to env, minted while env's current stay in the project
// began at addedAt, may still be used: THE environment rule, which verification and
// rotation apply. A key bound to the whole project (env "") is held by the project. A key
// lives in one stay of its environment only: from when env was added until it is dropped.
// The project must list env now and env's stay must be the one the key was minted in
// (the same added-at instant, to the microsecond Postgres keeps), so a key whose
// environment was dropped, and a key minted in a stay that has since ended (even one minted
// while the drop was under way), never works again, whenever env is added back. A key
// minted before stays were recorded (zero addedAt) is held only by an environment listed
// since then (zero too).
func (e Environments) Holds(env string, addedAt time.Time) bool {
	if env == "" {
		return true
	}
	current, listed := e[env]
	return listed && current.Equal(addedAt)
}

// HoldsSQL is Holds as a Postgres boolean expression, case for case, over a key's columns
// environment (text, NULL for a key bound to no environment) and environment_added_at
// (timestamptz, NULL for the zero time), judged against envs: SQL text for a jsonb value,
// such as a placeholder bound to Environments.JSON. envs must be SQL written in code,
// never input. TestHoldsSQLAgreesWithGo holds the two to each other.
func HoldsSQL(envs string) string {
	return `(environment IS NULL OR (` + envs + ` ? environment AND
		environment_added_at IS NOT DISTINCT FROM (` + envs + ` ->> environment)::timestamptz))`
}

// JSON is e as HoldsSQL reads it: every environment's name, to the instant it was added
// (JSON null for the zero time). pgx sends it as jsonb.
func (e Environments) JSON() map[string]*time.Time {
	out := make(map[string]*time.Time, len(e))
	for name, at := range e {
		if at.IsZero() {
			out[name] = nil
		} else {
			out[name] = &at
		}
	}
	return out
}
