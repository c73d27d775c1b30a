package main

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	testRegistry = "registry.example.com/latchkey"
	testTag      = "v0.0.0-test"
	namespace    = "latchkey"
	nonroot      = 65532 // the images' user (deploy/images)
	secretName   = "latchkey"
)

// secretVars are the settings that must come from the Secret, never from a literal.
var secretVars = map[string]string{
	"DATABASE_URL":            "database-url",
	"LATCHKEY_PEPPER":         "pepper",
	"LATCHKEY_OPERATOR_TOKEN": "operator-token",
	"AUDIT_SIGNING_KEY":       "audit-signing-key",
}

// shape is what an overlay must run.
type shape struct {
	replicas    map[string]int32 // Deployments with a fixed count
	autoscaled  string           // the Deployment an HPA owns, "" for none
	minGateways int32
	natsNodes   int32
	policies    bool // default-deny NetworkPolicies
	pdbs        []string
	ownSecret   bool // the overlay generates the Secret (dev); else the user makes it
}

var shapes = map[string]shape{
	"dev": {
		replicas:  map[string]int32{"accounts": 1, "keys": 1, "audit": 1, "ingest-gateway": 1},
		natsNodes: 1, ownSecret: true,
	},
	"prod": {
		replicas:   map[string]int32{"accounts": 2, "keys": 2, "audit": 1},
		autoscaled: "ingest-gateway", minGateways: 3, natsNodes: 3, policies: true,
		pdbs: []string{"accounts", "keys", "ingest-gateway", "nats"},
	},
}

func render(t *testing.T, overlay string) *rendered {
	t.Helper()
	y, err := Render(".", overlay, testRegistry, testTag)
	require.NoError(t, err)
	r, err := decode(y)
	require.NoError(t, err)
	return r
}

// TestStrictDecoding: the decoder the checks rely on refuses what the API server would
// (an unknown or misspelt field, an unknown kind), so a typo in a manifest fails here.
func TestStrictDecoding(t *testing.T) {
	_, err := decode([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 2\n"))
	require.ErrorContains(t, err, "unknown field")
	_, err = decode([]byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n    - name: c\n      imagePullPolicy: Always\n      resources: {limit: {}}\n"))
	require.ErrorContains(t, err, "unknown field")
	_, err = decode([]byte("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: x\n"))
	require.Error(t, err)
	_, err = Render(".", "staging", "", "")
	require.ErrorContains(t, err, `no overlay "staging"`)
}

// TestOverlays renders each overlay, decodes every object strictly into its API type and
// holds it to the invariants.
func TestOverlays(t *testing.T) {
	vars := serviceSettings(t)
	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			want, ok := shapes[overlay]
			require.True(t, ok, "overlay %s has no expected shape in this test", overlay)
			r := render(t, overlay)
			checkNamespace(t, r)
			checkServices(t, r, want, vars)
			checkSecrets(t, r, want)
			checkMigrations(t, r, vars)
			checkNATS(t, r, want, vars)
			checkNATSServer(t, r, vars)
			checkNATSLameDuck(t, r)
			checkNATSImage(t, r)
			checkPodSecurity(t, r)
			checkDisruption(t, r, want)
			checkNetwork(t, r, want)
		})
	}
}

// checkNamespace: everything but the Namespace itself is in it.
func checkNamespace(t *testing.T, r *rendered) {
	require.Contains(t, r.Namespaces, namespace)
	for _, w := range workloads(r) {
		require.Equal(t, namespace, w.meta.Namespace, w.name)
	}
	for n, s := range r.Services {
		require.Equal(t, namespace, s.Namespace, n)
	}
	for n, c := range r.ConfigMaps {
		require.Equal(t, namespace, c.Namespace, n)
	}
	for n, p := range r.Policies {
		require.Equal(t, namespace, p.Namespace, n)
	}
}

// checkServices: each service of Images runs as a Deployment of its image, as many as the
// overlay says, listens where its Service points, is probed, and has every variable it
// requires, and every one whose default is loopback, set to something of this cluster.
func checkServices(t *testing.T, r *rendered, want shape, vars map[string][]settingVar) {
	for _, name := range Images {
		d, ok := r.Deployments[name]
		require.True(t, ok, "Deployment %s", name)
		if name == want.autoscaled {
			require.Nil(t, d.Spec.Replicas, "%s: the HorizontalPodAutoscaler owns its count", name)
			hpa, ok := r.HPAs[name]
			require.True(t, ok, "HorizontalPodAutoscaler %s", name)
			require.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
			require.Equal(t, name, hpa.Spec.ScaleTargetRef.Name)
			require.NotNil(t, hpa.Spec.MinReplicas)
			require.GreaterOrEqual(t, *hpa.Spec.MinReplicas, want.minGateways)
			require.Greater(t, hpa.Spec.MaxReplicas, *hpa.Spec.MinReplicas)
			require.NotEmpty(t, hpa.Spec.Metrics)
		} else {
			require.NotNil(t, d.Spec.Replicas, name)
			require.Equal(t, want.replicas[name], *d.Spec.Replicas, "%s replicas", name)
		}
		require.True(t, selects(d.Spec.Selector, d.Spec.Template.Labels), "%s selects its pods", name)

		pod := d.Spec.Template.Spec
		require.Len(t, pod.Containers, 1, name)
		c := pod.Containers[0]
		require.Equal(t, testRegistry+"/"+name+":"+testTag, c.Image)
		require.Empty(t, c.Command, "%s: the image's entrypoint serves", name)
		require.Empty(t, c.Args, "%s serves (no subcommand)", name)

		env := effectiveEnv(t, r, c)
		read := map[string]settingVar{}
		for _, v := range vars[name] {
			read[v.Name] = v
		}
		for k := range env {
			_, ok := read[k]
			require.True(t, ok, "%s sets %s, which the service does not read", name, k)
		}
		for _, v := range vars[name] {
			if v.Required || loopback(v.Default) {
				require.True(t, env[v.Name].set(), "%s requires %s (or its default, %q, points at the pod itself): not set", name, v.Name, v.Default)
			}
		}

		// Listeners: each *_ADDR the service listens on (its own ports) is ":<port>" of a
		// named container port, and its Service forwards to that name.
		svc, ok := r.Services[name]
		require.True(t, ok, "Service %s", name)
		require.True(t, selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels), "Service %s selects its pods", name)
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		require.Contains(t, ports, "grpc", name)
		require.Contains(t, ports, "http", name)
		listens := 0
		for k, e := range env {
			if !strings.HasSuffix(k, "_ADDR") || !strings.HasPrefix(e.value, ":") {
				continue
			}
			port, err := strconv.Atoi(strings.TrimPrefix(e.value, ":"))
			require.NoError(t, err, "%s=%s", k, e.value)
			require.True(t, slices.Contains([]int32{ports["grpc"], ports["http"]}, int32(port)), "%s: %s=%s is no container port", name, k, e.value)
			listens++
		}
		require.Equal(t, 2, listens, "%s sets its gRPC and HTTP listeners", name)
		for _, sp := range svc.Spec.Ports {
			require.Equal(t, intstr.FromString(sp.Name), sp.TargetPort, "Service %s port %s", name, sp.Name)
			require.Equal(t, ports[sp.Name], sp.Port, "Service %s port %s is the container's", name, sp.Name)
		}

		// Probes: ready on /healthz (503 while a dependency is down or while draining),
		// started on native gRPC health, alive while the listener accepts.
		require.NotNil(t, c.ReadinessProbe, name)
		require.NotNil(t, c.ReadinessProbe.HTTPGet, "%s readiness on /healthz", name)
		require.Equal(t, "/healthz", c.ReadinessProbe.HTTPGet.Path)
		require.Equal(t, intstr.FromString("http"), c.ReadinessProbe.HTTPGet.Port)
		require.NotNil(t, c.StartupProbe, name)
		require.NotNil(t, c.StartupProbe.GRPC, "%s startup on gRPC health", name)
		require.Equal(t, ports["grpc"], c.StartupProbe.GRPC.Port)
		require.NotNil(t, c.LivenessProbe, name)
		require.Nil(t, c.LivenessProbe.HTTPGet, "%s: liveness must not follow dependencies (/healthz)", name)
		require.Nil(t, c.LivenessProbe.GRPC, "%s: liveness must not follow dependencies (gRPC health follows /healthz)", name)
		require.NotNil(t, c.LivenessProbe.TCPSocket, name)
		require.Equal(t, intstr.FromString("grpc"), c.LivenessProbe.TCPSocket.Port)
	}
}

// checkSecrets: the Postgres URL, the pepper and the operator token come from the Secret,
// never as literals. dev generates it with every key; prod ships none (the user's).
func checkSecrets(t *testing.T, r *rendered, want shape) {
	for _, w := range workloads(r) {
		for _, c := range w.pod.Containers {
			for _, e := range c.Env {
				key, secret := secretVars[e.Name]
				if !secret {
					continue
				}
				require.Empty(t, e.Value, "%s: %s is a literal", w.name, e.Name)
				require.NotNil(t, e.ValueFrom, "%s: %s", w.name, e.Name)
				ref := e.ValueFrom.SecretKeyRef
				require.NotNil(t, ref, "%s: %s from a Secret", w.name, e.Name)
				require.Equal(t, key, ref.Key, "%s: %s", w.name, e.Name)
				optional := ref.Optional != nil && *ref.Optional
				if want.ownSecret {
					s, ok := r.Secrets[ref.Name]
					require.True(t, ok, "%s: Secret %s is in the overlay", w.name, ref.Name)
					require.True(t, optional || len(s.Data[key]) > 0 || s.StringData[key] != "", "%s: Secret %s has %s", w.name, ref.Name, key)
				} else {
					require.Equal(t, secretName, ref.Name, "%s: %s", w.name, e.Name)
				}
			}
		}
	}
	if !want.ownSecret {
		require.Empty(t, r.Secrets, "no Secret is rendered: the user makes %q", secretName)
	}
}

// checkMigrations: each service that reads DATABASE_URL has a Job running `<svc> migrate`
// with its own image and the Secret's URL.
func checkMigrations(t *testing.T, r *rendered, vars map[string][]settingVar) {
	for _, name := range Images {
		if !slices.ContainsFunc(vars[name], func(v settingVar) bool { return v.Name == "DATABASE_URL" }) {
			continue
		}
		j, ok := r.Jobs[name+"-migrate"]
		require.True(t, ok, "Job %s-migrate", name)
		require.Len(t, j.Spec.Template.Spec.Containers, 1)
		c := j.Spec.Template.Spec.Containers[0]
		require.Equal(t, r.Deployments[name].Spec.Template.Spec.Containers[0].Image, c.Image)
		require.Equal(t, []string{"migrate"}, c.Args)
		require.Empty(t, c.Command)
		require.Contains(t, []corev1.RestartPolicy{corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}, j.Spec.Template.Spec.RestartPolicy)
		env := effectiveEnv(t, r, c)
		require.Contains(t, env, "DATABASE_URL", "%s-migrate", name)
		require.NotNil(t, env["DATABASE_URL"].secret, "%s-migrate", name)
	}
	for n := range r.Jobs {
		svc := strings.TrimSuffix(n, "-migrate")
		require.Contains(t, Images, svc, "Job %s", n)
	}
}

// checkNATS: a StatefulSet of the overlay's node count with JetStream, clustered when
// more than one, every service's NATS_URL on its Service, and every stream kept on every
// node (LATCHKEY_STREAM_REPLICAS, or its default, equal to the node count).
func checkNATS(t *testing.T, r *rendered, want shape, vars map[string][]settingVar) {
	s, ok := r.StatefulSets["nats"]
	require.True(t, ok, "StatefulSet nats")
	require.NotNil(t, s.Spec.Replicas)
	require.Equal(t, want.natsNodes, *s.Spec.Replicas, "NATS nodes")
	headless, ok := r.Services[s.Spec.ServiceName]
	require.True(t, ok, "the StatefulSet's Service %s", s.Spec.ServiceName)
	require.Equal(t, corev1.ClusterIPNone, headless.Spec.ClusterIP)
	require.NotEmpty(t, s.Spec.VolumeClaimTemplates, "JetStream keeps its store on a volume")

	opts := natsOptions(t, r, s)
	require.True(t, opts.JetStream, "JetStream")
	require.Equal(t, "/data", opts.StoreDir, "JetStream stores on the volume")
	require.True(t, slices.ContainsFunc(s.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == opts.StoreDir && m.Name == s.Spec.VolumeClaimTemplates[0].Name
	}), "the volume claim is mounted at %s", opts.StoreDir)
	if want.natsNodes == 1 {
		require.Zero(t, opts.Cluster.Port, "one node is no cluster")
	} else {
		require.Equal(t, 6222, opts.Cluster.Port)
		var got, all []string
		for _, u := range opts.Routes {
			require.Equal(t, "6222", u.Port(), "route %s", u)
			host, ok := strings.CutSuffix(u.Hostname(), "."+s.Spec.ServiceName)
			require.True(t, ok, "route %s through Service %s", u, s.Spec.ServiceName)
			got = append(got, host)
		}
		for i := range want.natsNodes {
			all = append(all, fmt.Sprintf("nats-%d", i))
		}
		require.Equal(t, all, got, "routes to every node")
	}

	for _, name := range Images {
		env := effectiveEnv(t, r, r.Deployments[name].Spec.Template.Spec.Containers[0])
		u, err := url.Parse(env["NATS_URL"].value)
		require.NoError(t, err)
		require.Equal(t, "nats", u.Scheme)
		requireServicePort(t, r, u.Host, "nats", name+" NATS_URL")

		replicas := ""
		for _, v := range vars[name] {
			if v.Name == "LATCHKEY_STREAM_REPLICAS" {
				replicas = v.Default
			}
		}
		require.NotEmpty(t, replicas, "%s reads LATCHKEY_STREAM_REPLICAS", name)
		if e, ok := env["LATCHKEY_STREAM_REPLICAS"]; ok {
			replicas = e.value
		}
		require.Equal(t, strconv.Itoa(int(want.natsNodes)), replicas, "%s: its streams on every NATS node", name)
	}
}

// checkPodSecurity: every pod runs non-root with a read-only root filesystem, no
// privilege escalation, no capabilities, the runtime's seccomp profile, no service
// account token, and resource requests and a memory limit. Latchkey's own run as the
// images' user.
func checkPodSecurity(t *testing.T, r *rendered) {
	for _, w := range workloads(r) {
		p := w.pod
		require.NotNil(t, p.SecurityContext, w.name)
		require.NotNil(t, p.SecurityContext.RunAsNonRoot, w.name)
		require.True(t, *p.SecurityContext.RunAsNonRoot, w.name)
		require.NotNil(t, p.SecurityContext.RunAsUser, w.name)
		require.NotZero(t, *p.SecurityContext.RunAsUser, w.name)
		require.NotNil(t, p.SecurityContext.SeccompProfile, w.name)
		require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, p.SecurityContext.SeccompProfile.Type)
		require.NotNil(t, p.AutomountServiceAccountToken, w.name)
		require.False(t, *p.AutomountServiceAccountToken, "%s needs no Kubernetes API token", w.name)
		require.Empty(t, p.InitContainers, w.name)
		for _, c := range p.Containers {
			if strings.HasPrefix(c.Image, testRegistry+"/") {
				require.Equal(t, int64(nonroot), *p.SecurityContext.RunAsUser, w.name)
			}
			sc := c.SecurityContext
			require.NotNil(t, sc, w.name)
			require.NotNil(t, sc.ReadOnlyRootFilesystem, w.name)
			require.True(t, *sc.ReadOnlyRootFilesystem, w.name)
			require.NotNil(t, sc.AllowPrivilegeEscalation, w.name)
			require.False(t, *sc.AllowPrivilegeEscalation, w.name)
			require.NotNil(t, sc.Capabilities, w.name)
			require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, w.name)
			require.Empty(t, sc.Capabilities.Add, w.name)
			require.Nil(t, sc.Privileged, w.name)
			require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s requests CPU", w.name)
			require.False(t, c.Resources.Requests.Memory().IsZero(), "%s requests memory", w.name)
			require.False(t, c.Resources.Limits.Memory().IsZero(), "%s has a memory limit", w.name)
			require.GreaterOrEqual(t, c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()), 0, w.name)
		}
	}
}

// checkDisruption: each of the overlay's PodDisruptionBudgets selects the pods of its
// workload and lets at most one go at a time, leaving at least one.
func checkDisruption(t *testing.T, r *rendered, want shape) {
	got := make([]string, 0, len(r.PDBs))
	for n := range r.PDBs {
		got = append(got, n)
	}
	require.ElementsMatch(t, want.pdbs, got, "PodDisruptionBudgets")
	for n, pdb := range r.PDBs {
		w, ok := workloadNamed(r, n)
		require.True(t, ok, "PodDisruptionBudget %s has a workload", n)
		require.True(t, selects(pdb.Spec.Selector, w.labels), "PodDisruptionBudget %s selects %s's pods", n, n)
		require.Nil(t, pdb.Spec.MinAvailable, n)
		require.NotNil(t, pdb.Spec.MaxUnavailable, n)
		require.Equal(t, intstr.FromInt32(1), *pdb.Spec.MaxUnavailable, n)
		min := want.minGateways
		if w.replicas != nil {
			min = *w.replicas
		}
		require.GreaterOrEqual(t, min, int32(2), "%s: a budget of one pod at a time leaves one", n)
	}
}

// loopback reports whether a default points at the pod itself (127.0.0.1, localhost): a
// variable with such a default must be set in the cluster.
func loopback(def string) bool {
	if def == "" {
		return false
	}
	host := def
	if u, err := url.Parse(def); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireServicePort requires hostport ("name:port") to be a port of a Service here, and
// that Service to select the pods of workload to.
func requireServicePort(t *testing.T, r *rendered, hostport, to, what string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	require.NoError(t, err, what)
	svc, ok := r.Services[host]
	require.True(t, ok, "%s: no Service %s", what, host)
	p, err := strconv.Atoi(port)
	require.NoError(t, err, what)
	require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == int32(p) }), "%s: Service %s has no port %d", what, host, p)
	w, ok := workloadNamed(r, to)
	require.True(t, ok, what)
	require.True(t, selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, w.labels), "%s: Service %s selects %s", what, host, to)
}
