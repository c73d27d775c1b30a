package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// headerRoom is what max_payload must hold beyond the gateway's largest body: the
// headers the gateway publishes with it (its request id, key and account, the expected
// stream), a few hundred bytes, with a wide margin.
const headerRoom = 64 << 10

// natsOptions is the overlay's nats.conf as nats-server itself reads it (the version
// pinned in this module's go.mod, the one the image runs): every file of the ConfigMap
// the StatefulSet mounts is written to a directory, so that includes resolve as they do
// under /etc/nats, and parsed with server.ProcessConfigFile, which refuses a field it
// does not know.
func natsOptions(t *testing.T, r *rendered, s *appsv1.StatefulSet) *server.Options {
	t.Helper()
	require.Equal(t, []string{"--config", "/etc/nats/nats.conf"}, s.Spec.Template.Spec.Containers[0].Args)
	dir := t.TempDir()
	var conf map[string]string
	for _, v := range s.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil {
			cm, ok := r.ConfigMaps[v.ConfigMap.Name]
			require.True(t, ok, "ConfigMap %s", v.ConfigMap.Name)
			require.True(t, slices.ContainsFunc(s.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == v.Name && m.MountPath == "/etc/nats" && m.SubPath == ""
			}), "ConfigMap %s is mounted whole at /etc/nats", cm.Name)
			conf = cm.Data
		}
	}
	require.Contains(t, conf, "nats.conf", "the nats StatefulSet mounts its configuration")
	for name, text := range conf {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
	t.Setenv("POD_NAME", s.Name+"-0") // server_name: $POD_NAME, from the pod's name
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	require.NoError(t, err, "nats-server %s reads nats.conf", server.VERSION)
	return opts
}

// checkNATSServer: nats-server accepts the overlay's configuration, and its max_payload
// holds the largest body the gateway accepts (GATEWAY_MAX_BODY_BYTES as the Deployment
// sets it, else the gateway's own default from `ingest-gateway settings`) with its
// headers; below that a body the gateway took is refused at publish time (413).
func checkNATSServer(t *testing.T, r *rendered, vars map[string][]settingVar) {
	s := r.StatefulSets["nats"]
	opts := natsOptions(t, r, s)

	maxBody := ""
	for _, v := range vars["ingest-gateway"] {
		if v.Name == "GATEWAY_MAX_BODY_BYTES" {
			maxBody = v.Default
		}
	}
	require.NotEmpty(t, maxBody, "ingest-gateway reads GATEWAY_MAX_BODY_BYTES")
	env := effectiveEnv(t, r, r.Deployments["ingest-gateway"].Spec.Template.Spec.Containers[0])
	if e, ok := env["GATEWAY_MAX_BODY_BYTES"]; ok {
		maxBody = e.value
	}
	body, err := strconv.ParseInt(maxBody, 10, 64)
	require.NoError(t, err, "GATEWAY_MAX_BODY_BYTES=%s", maxBody)
	payload := int64(opts.MaxPayload)
	if payload == 0 {
		payload = server.MAX_PAYLOAD_SIZE // unset: nats-server's default, 1 MB
	}
	require.GreaterOrEqual(t, payload, body+headerRoom,
		"NATS max_payload %d must hold the gateway's largest body, %d bytes, and its headers", payload, body)
}
