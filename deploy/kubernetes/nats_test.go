package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// ldmHook is the preStop script of the NATS container: lame duck mode by signal to the
// pid in pid_file, then a wait while the server moves its clients away and exits.
var ldmHook = regexp.MustCompile(`^nats-server --signal ldm=(\S+) && sleep (\d+)$`)

// checkNATSLameDuck: lame_duck_duration takes effect. nats-server exits at once on
// SIGTERM; lame duck mode starts only by `nats-server --signal ldm=<pid file>`, so a
// preStop hook sends it and waits out the duration (the server exits at its end, which
// ends the container and the hook), all within terminationGracePeriodSeconds. The pid
// file is on a writable volume (the root filesystem is read-only).
func checkNATSLameDuck(t *testing.T, r *rendered) {
	s := r.StatefulSets["nats"]
	opts := natsOptions(t, r, s)
	require.NotEmpty(t, opts.PidFile, "nats.conf sets pid_file, for the preStop hook's signal")
	lameDuck := opts.LameDuckDuration
	if lameDuck == 0 {
		lameDuck = server.DEFAULT_LAME_DUCK_DURATION
	}

	pod := s.Spec.Template.Spec
	c := pod.Containers[0]
	require.True(t, slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == filepath.Dir(opts.PidFile) && !m.ReadOnly && slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == m.Name && v.EmptyDir != nil
		})
	}), "pid_file %s is on a writable emptyDir", opts.PidFile)

	require.NotNil(t, c.Lifecycle, "nats: a preStop hook starts lame duck mode")
	require.NotNil(t, c.Lifecycle.PreStop, "nats: a preStop hook starts lame duck mode")
	require.NotNil(t, c.Lifecycle.PreStop.Exec, "nats: the preStop hook runs nats-server --signal")
	cmd := c.Lifecycle.PreStop.Exec.Command
	require.Len(t, cmd, 3, "nats preStop: sh -c <script>")
	require.Equal(t, []string{"sh", "-c"}, cmd[:2])
	m := ldmHook.FindStringSubmatch(cmd[2])
	require.NotNil(t, m, "nats preStop %q is %s", cmd[2], ldmHook)
	require.Equal(t, opts.PidFile, m[1], "the hook signals the pid in pid_file")
	wait, err := strconv.Atoi(m[2])
	require.NoError(t, err)
	require.Greater(t, time.Duration(wait)*time.Second, lameDuck, "the hook waits out lame_duck_duration (%s)", lameDuck)

	require.NotNil(t, pod.TerminationGracePeriodSeconds)
	require.Greater(t, *pod.TerminationGracePeriodSeconds, int64(wait), "the hook's wait ends before the kubelet's SIGKILL")
}

// checkNATSImage: the NATS image runs the nats-server version make cluster and its chaos
// test run (the go.work workspace's, pinned in deploy/allinone/go.mod), the one this
// module parses nats.conf with: nats:<version>-alpine (alpine: the preStop hook needs sh).
func checkNATSImage(t *testing.T, r *rendered) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	list := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2")
	list.Dir = root
	list.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	out, err := list.CombinedOutput()
	require.NoError(t, err, "go list -m nats-server in the workspace: %s", out)
	tested := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	require.Equal(t, tested, server.VERSION, "deploy/kubernetes/go.mod pins the workspace's nats-server")
	c := r.StatefulSets["nats"].Spec.Template.Spec.Containers[0]
	require.Equal(t, "nats:"+tested+"-alpine", c.Image, "the NATS image runs the tested nats-server")
}
