package natsx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// hostile are strings a caller may put where an id belongs: each would break a subject
// (space, wildcard, empty or extra token, control character, protocol-line length) or is
// merely not an id.
var hostile = []string{
	"", "a b", "a%20b", "acc_x.y", "acc_*", ">", "*", "acc_\r\nPUB x 1", "acc_\x00", "a\tb",
	"..", ".", "acc_01hzy", "ACC_" + strings.Repeat("0", 26), strings.Repeat("a", 5000),
	ids.Key[:3] + "_" + strings.Repeat("z", 26), "accé", ids.New(ids.Key),
}

// TestSubjectsAreAlwaysValid: whatever the id, every builder returns a subject a publish
// accepts; a real id is kept, anything else becomes "_".
func TestSubjectsAreAlwaysValid(t *testing.T) {
	acc, evt := ids.New(ids.Account), ids.New(ids.Event)
	require.Equal(t, "ns.audit."+acc, natsx.AuditSubject("ns", acc))
	require.Equal(t, "ns.gateways.applied."+evt, natsx.GatewayAppliedSubject("ns", evt))
	require.Equal(t, "ns.events.key.revoked", natsx.EventSubject("ns", "key.revoked"))
	require.Equal(t, "ns.events.>", natsx.EventSubject("ns", ">"))
	for _, s := range hostile {
		for _, subject := range []string{natsx.AuditSubject("ns", s), natsx.GatewayAppliedSubject("ns", s)} {
			require.True(t, natsx.ValidSubject(subject), "%q from %.40q", subject, s)
			require.True(t, strings.HasSuffix(subject, "._"), "%q from %.40q", subject, s)
		}
		// An event kind is dotted tokens rather than an id: kept when it is that. ">" is
		// the subscription filter for every kind.
		if s != ">" {
			require.True(t, natsx.ValidSubject(natsx.EventSubject("ns", s)), "%.40q", s)
		}
	}
	require.Equal(t, "ns.audit._", natsx.AuditSubject("ns", acc+"x"), "an id with a tail is not an id")
}

func TestValidSubject(t *testing.T) {
	for _, s := range []string{"latchkey.events.key.revoked", "t1.audit._", "a", strings.Repeat("a.", 127) + "b"} {
		require.True(t, natsx.ValidSubject(s), s)
	}
	for _, s := range []string{"", "a b", "a..b", ".a", "a.", "a.*", "a.>", "a.\x7f", strings.Repeat("a.", 128) + "b", strings.Repeat("a", 65)} {
		require.False(t, natsx.ValidSubject(s), "%.40q", s)
	}
}

// TestIngestSubjects: data subjects are built only from subject tokens; any part that is
// not one is an error naming it, never a subject that would land elsewhere (a wildcard, a
// dot adding a token).
func TestIngestSubjects(t *testing.T) {
	acc, key := ids.New(ids.Account), ids.New(ids.Key)
	got, err := natsx.IngestSubject("ns", acc, "prj_1", "", "traces")
	require.NoError(t, err)
	require.Equal(t, "ns.ingest."+acc+".prj_1._.traces", got)
	got, err = natsx.AnonSubject("ns", key, "logs")
	require.NoError(t, err)
	require.Equal(t, "ns.anon."+key+".logs", got)
	require.Equal(t, "ns.anon."+key+".>", natsx.AnonKeySubjects("ns", key))
	require.Equal(t, "logs", natsx.SignalOfSubject(got))
	for _, s := range hostile {
		if natsx.ValidToken(s) {
			continue
		}
		_, err := natsx.IngestSubject("ns", s, "p", "e", "traces")
		require.ErrorContains(t, err, "account id", "%.40q", s)
		_, err = natsx.IngestSubject("ns", acc, "p", s, "traces")
		if s != "" { // an empty environment is "_"
			require.ErrorContains(t, err, "environment", "%.40q", s)
		}
		_, err = natsx.AnonSubject("ns", s, "traces")
		require.ErrorContains(t, err, "key id", "%.40q", s)
		require.Empty(t, natsx.AnonKeySubjects("ns", s), "%.40q", s)
	}
}

// TestIngestStreamConfigs: the two ingest streams, their subjects and retentions; a
// retention shorter than the duplicate window shortens the window (JetStream refuses
// more); a namespace that is not one token, or no retention, is an error.
func TestIngestStreamConfigs(t *testing.T) {
	cfgs, err := natsx.IngestStreamConfigs("ns", time.Hour, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, cfgs, 2)
	require.Equal(t, natsx.IngestStream("ns"), cfgs[0].Name)
	require.Equal(t, []string{"ns.ingest.>"}, cfgs[0].Subjects)
	require.Equal(t, time.Hour, cfgs[0].MaxAge)
	require.Equal(t, natsx.IngestDuplicateWindow, cfgs[0].Duplicates)
	require.Equal(t, natsx.AnonIngestStream("ns"), cfgs[1].Name)
	require.Equal(t, []string{"ns.anon.>"}, cfgs[1].Subjects)
	require.Equal(t, 30*time.Second, cfgs[1].MaxAge)
	require.Equal(t, 30*time.Second, cfgs[1].Duplicates)
	for _, bad := range []struct {
		ns   string
		r, a time.Duration
	}{{"bad.ns", time.Hour, time.Hour}, {"", time.Hour, time.Hour}, {"ns", 0, time.Hour}, {"ns", time.Hour, -time.Second}} {
		_, err := natsx.IngestStreamConfigs(bad.ns, bad.r, bad.a)
		require.Error(t, err, "%+v", bad)
	}
}
