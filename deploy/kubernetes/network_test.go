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
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// public are the ports the world reaches (through a load balancer or an ingress
// controller, from any namespace): the gateway's OTLP ports and the services' REST ports.
var public = map[string][]string{
	"ingest-gateway": {"grpc", "http"},
	"accounts":       {"http"},
	"keys":           {"http"},
	"audit":          {"http"},
}

// scraped are the ports Prometheus reads /metrics on, from the namespace named
// "monitoring": NATS's monitoring port (the NetworkPolicy monitoring), and the ports
// serving each service's /metrics, which are public anyway.
var scraped = map[string][]string{
	"nats":           {"monitor"},
	"ingest-gateway": {"http"},
	"accounts":       {"http"},
	"keys":           {"http"},
	"audit":          {"http"},
}

// endpoint is one end of a connection: a pod (namespace and labels) or an address outside
// the cluster.
type endpoint struct {
	namespace string
	labels    map[string]string
	ip        net.IP
}

func (e endpoint) String() string {
	if e.ip != nil {
		return e.ip.String()
	}
	return fmt.Sprintf("%s/%v", e.namespace, e.labels)
}

var (
	outside  = endpoint{namespace: "ingress", labels: map[string]string{"app": "ingress-controller"}}
	kubeDNS  = endpoint{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	postgres = endpoint{ip: net.ParseIP("10.20.30.40")}
	scraper  = endpoint{namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
)

// edge is one connection the manifests must allow: from a workload to a port of another.
type edge struct {
	from, to string
	port     int32
}

// checkNetwork evaluates the overlay's NetworkPolicies as Kubernetes does (a pod selected
// by no policy of a direction is open in it; else a connection needs a rule of a policy
// selecting it, on both ends) and requires exactly what must talk to what: every pod-to-pod
// connection the services' own settings make (their *_GRPC_ADDR and NATS_URL, resolved
// through the Services), NATS nodes to each other, and nothing else inside the namespace;
// the public ports from anywhere and no other port; the metrics ports from the
// namespace monitoring, and no other port but the public ones; cluster DNS for everyone; Postgres for
// exactly the workloads that read DATABASE_URL.
func checkNetwork(t *testing.T, r *rendered, want shape) {
	if !want.policies {
		require.Empty(t, r.Policies)
		return
	}
	deny, ok := r.Policies["default-deny"]
	require.True(t, ok, "NetworkPolicy default-deny")
	require.Empty(t, deny.Spec.PodSelector.MatchLabels)
	require.Empty(t, deny.Spec.PodSelector.MatchExpressions)
	require.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, deny.Spec.PolicyTypes)
	require.Empty(t, deny.Spec.Ingress)
	require.Empty(t, deny.Spec.Egress)

	ws := workloads(r)
	needed := neededEdges(t, r, ws)
	for _, from := range ws {
		src := endpoint{namespace: namespace, labels: from.labels}
		for _, to := range ws {
			dst := endpoint{namespace: namespace, labels: to.labels}
			for _, c := range to.pod.Containers {
				for _, p := range c.Ports {
					got := allowed(r, src, dst, p.ContainerPort, corev1.ProtocolTCP)
					need := slices.Contains(needed, edge{from.name, to.name, p.ContainerPort})
					require.Equal(t, need, got, "%s -> %s:%d (%s)", from.name, to.name, p.ContainerPort, p.Name)
				}
			}
		}
	}

	for _, to := range ws {
		dst := endpoint{namespace: namespace, labels: to.labels}
		for _, c := range to.pod.Containers {
			for _, p := range c.Ports {
				open := slices.Contains(public[to.name], p.Name)
				require.Equal(t, open, allowed(r, outside, dst, p.ContainerPort, corev1.ProtocolTCP), "outside -> %s:%d (%s)", to.name, p.ContainerPort, p.Name)
				open = open || slices.Contains(scraped[to.name], p.Name)
				require.Equal(t, open, allowed(r, scraper, dst, p.ContainerPort, corev1.ProtocolTCP), "monitoring -> %s:%d (%s)", to.name, p.ContainerPort, p.Name)
			}
		}
	}
	for name, ports := range public {
		require.NotEmpty(t, ports)
		_, ok := r.Deployments[name]
		require.True(t, ok, "public ports of %s", name)
	}

	for _, from := range ws {
		src := endpoint{namespace: namespace, labels: from.labels}
		require.True(t, allowed(r, src, kubeDNS, 53, corev1.ProtocolUDP), "%s -> DNS", from.name)
		readsDB := false
		for _, c := range from.pod.Containers {
			if _, ok := effectiveEnv(t, r, c)["DATABASE_URL"]; ok {
				readsDB = true
			}
		}
		require.Equal(t, readsDB, allowed(r, src, postgres, 5432, corev1.ProtocolTCP), "%s -> Postgres", from.name)
		require.False(t, allowed(r, src, postgres, 443, corev1.ProtocolTCP), "%s -> outside on 443", from.name)
	}
}

// neededEdges are the connections the workloads' own settings make: each variable whose
// value is host:port or nats://host:port of a Service here goes to the pods that Service
// selects, on the port it forwards to; and NATS nodes route to each other on 6222 when
// clustered.
func neededEdges(t *testing.T, r *rendered, ws []workload) []edge {
	var edges []edge
	for _, from := range ws {
		for _, c := range from.pod.Containers {
			for k, e := range effectiveEnv(t, r, c) {
				hostport := e.value
				if u, err := url.Parse(e.value); err == nil && u.Scheme != "" && u.Host != "" {
					hostport = u.Host
				}
				host, port, err := net.SplitHostPort(hostport)
				if err != nil || host == "" {
					continue
				}
				svc, ok := r.Services[host]
				if !ok {
					continue
				}
				n, err := strconv.Atoi(port)
				require.NoError(t, err, "%s: %s=%s", from.name, k, e.value)
				sp := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == int32(n) })
				require.GreaterOrEqual(t, sp, 0, "%s: %s=%s: Service %s has no port %d", from.name, k, e.value, host, n)
				// A gRPC peer's Service is headless: its name resolves to every ready pod, and
				// the caller spreads its calls over them (server.DialPeer); a ClusterIP would
				// keep each caller's one connection on one pod. Callers then dial the pods'
				// own port, so the Service's port must be it.
				grpcPeer := strings.HasSuffix(k, "_GRPC_ADDR")
				if grpcPeer {
					require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "%s: %s=%s: Service %s must be headless", from.name, k, e.value, host)
				}
				for _, to := range ws {
					if !selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, to.labels) {
						continue
					}
					port := targetPort(t, to, svc.Spec.Ports[sp].TargetPort)
					if grpcPeer {
						require.Equal(t, int32(n), port, "%s: %s=%s: headless Service %s: the port callers dial is the pod's", from.name, k, e.value, host)
					}
					edges = append(edges, edge{from.name, to.name, port})
				}
			}
		}
	}
	if s, ok := r.StatefulSets["nats"]; ok && *s.Spec.Replicas > 1 {
		edges = append(edges, edge{"nats", "nats", 6222})
	}
	return edges
}

// targetPort is the container port a Service's targetPort names in w.
func targetPort(t *testing.T, w workload, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, c := range w.pod.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return cp.ContainerPort
			}
		}
	}
	t.Fatalf("%s has no port named %s", w.name, p.StrVal)
	return 0
}

// allowed reports whether src may open a connection to dst's port under r's policies:
// src's egress and dst's ingress must both let it (an outside end is subject to none).
func allowed(r *rendered, src, dst endpoint, port int32, proto corev1.Protocol) bool {
	return direction(r, src, dst, port, proto, networkingv1.PolicyTypeEgress) &&
		direction(r, dst, src, port, proto, networkingv1.PolicyTypeIngress)
}

// direction reports whether the policies of pod self let a connection of typ with peer
// on port: open when no policy of that type selects self.
func direction(r *rendered, self, peer endpoint, port int32, proto corev1.Protocol, typ networkingv1.PolicyType) bool {
	if self.ip != nil || self.namespace != namespace {
		return true // not ours: no policy here applies
	}
	selected := false
	for _, p := range r.Policies {
		if !slices.Contains(p.Spec.PolicyTypes, typ) || !selects(&p.Spec.PodSelector, self.labels) {
			continue
		}
		selected = true
		if typ == networkingv1.PolicyTypeIngress {
			for _, rule := range p.Spec.Ingress {
				if peersMatch(rule.From, peer) && portsMatch(rule.Ports, port, proto) {
					return true
				}
			}
		} else {
			for _, rule := range p.Spec.Egress {
				if peersMatch(rule.To, peer) && portsMatch(rule.Ports, port, proto) {
					return true
				}
			}
		}
	}
	return !selected
}

// peersMatch: no peers is everyone; an ipBlock matches any address in it, pods included
// (their addresses are in 0.0.0.0/0 too); a pod selector without a namespace selector
// matches pods of the policy's namespace only.
func peersMatch(peers []networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
			if err != nil {
				continue
			}
			if e.ip == nil || cidr.Contains(e.ip) {
				if !slices.ContainsFunc(p.IPBlock.Except, func(ex string) bool {
					_, n, err := net.ParseCIDR(ex)
					return err == nil && e.ip != nil && n.Contains(e.ip)
				}) {
					return true
				}
			}
			continue
		}
		if e.ip != nil {
			continue
		}
		if p.NamespaceSelector == nil {
			if e.namespace != namespace {
				continue
			}
		} else if !selects(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": e.namespace}) {
			continue
		}
		if p.PodSelector == nil || selects(p.PodSelector, e.labels) {
			return true
		}
	}
	return false
}

// portsMatch: no ports is every port; a port without a protocol is TCP.
func portsMatch(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type != intstr.Int {
			panic("named ports in NetworkPolicies are not evaluated by this test: " + strings.TrimSpace(p.Port.StrVal))
		}
		end := p.Port.IntVal
		if p.EndPort != nil {
			end = *p.EndPort
		}
		if p.Port.IntVal <= port && port <= end {
			return true
		}
	}
	return false
}
