package allinone

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	_ "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	_ "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	_ "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// requireNumber asserts that the value at path is a JSON number.
func requireNumber(t *testing.T, r testutil.Reply, path string) {
	t.Helper()
	v := r.Get(path)
	_, ok := v.(float64)
	require.Truef(t, ok, "%s is %T (%v), not a JSON number: %s", path, v, v, r.Raw)
}

// TestCountsAndDurationsAreJSONNumbers: counts and durations come back over REST as JSON
// numbers, as the README shows them (proto3 JSON writes 64-bit integers as strings).
func TestCountsAndDurationsAreJSONNumbers(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("numbers")
	project := s.Project(token)
	s.waitForLiveGateways(token, project, 1)

	id, _ := s.IngestKey(token, project)
	r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"wait_for_gateways": true}))
	for _, f := range []string{"receipt.waited_ms", "receipt.gateways_live", "receipt.gateways_applied"} {
		requireNumber(t, r, f)
	}

	types := s.Must(200, s.Call("GET", "/v1/key-types", token, nil))
	list, _ := types.Get("key_types").([]any)
	require.NotEmpty(t, list, types.Raw)
	for i := range list {
		one := testutil.Reply{Body: list[i].(map[string]any), Raw: types.Raw}
		for _, f := range []string{"rotation_grace_seconds", "data_ttl_seconds", "claim_grace_seconds", "random_bytes", "rate_limit_burst"} {
			requireNumber(t, one, f)
		}
	}

	testutil.Eventually(t, 10*time.Second, func() bool {
		evs, _ := s.Must(200, s.Call("GET", "/v1/audit/events", token, nil)).Get("events").([]any)
		return len(evs) > 0
	}, "the account's audit events")
	events := s.Must(200, s.Call("GET", "/v1/audit/events", token, nil))
	for _, e := range events.Get("events").([]any) {
		requireNumber(t, testutil.Reply{Body: e.(map[string]any), Raw: events.Raw}, "sequence")
	}
	requireNumber(t, s.Must(200, s.Call("GET", "/v1/audit/verify", token, nil)), "events_checked")
}

// TestNoSixtyFourBitIntegersInTheAPI keeps every integer field of our protos 32-bit, so
// that none comes back as a JSON string: the rule behind the test above, for every field.
func TestNoSixtyFourBitIntegersInTheAPI(t *testing.T) {
	wide := map[protoreflect.Kind]bool{
		protoreflect.Int64Kind: true, protoreflect.Sint64Kind: true, protoreflect.Sfixed64Kind: true,
		protoreflect.Uint64Kind: true, protoreflect.Fixed64Kind: true,
	}
	var check func(protoreflect.MessageDescriptors)
	seen := 0
	check = func(msgs protoreflect.MessageDescriptors) {
		for i := range msgs.Len() {
			m := msgs.Get(i)
			check(m.Messages())
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				seen++
				require.Falsef(t, wide[f.Kind()], "%s is %s: proto3 JSON writes it as a string; use int32", f.FullName(), f.Kind())
				if f.IsMap() {
					require.Falsef(t, wide[f.MapValue().Kind()] || wide[f.MapKey().Kind()], "%s has a 64-bit key or value", f.FullName())
				}
			}
		}
	}
	for _, pkg := range []protoreflect.FullName{"latchkey.accounts.v1", "latchkey.audit.v1", "latchkey.events.v1", "latchkey.keys.v1"} {
		protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
			check(fd.Messages())
			return true
		})
	}
	require.Positive(t, seen, "no latchkey messages registered")
}
