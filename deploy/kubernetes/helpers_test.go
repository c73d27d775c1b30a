package main

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// workload is a Deployment's, StatefulSet's or Job's pods.
type workload struct {
	name     string
	kind     string
	meta     metav1.ObjectMeta
	pod      corev1.PodSpec
	labels   map[string]string // its pods'
	replicas *int32            // nil for a Job, or when an autoscaler owns the count
}

// workloads lists every workload of r, sorted by name.
func workloads(r *rendered) []workload {
	var ws []workload
	for n, d := range r.Deployments {
		ws = append(ws, workload{n, "Deployment", d.ObjectMeta, d.Spec.Template.Spec, d.Spec.Template.Labels, d.Spec.Replicas})
	}
	for n, s := range r.StatefulSets {
		ws = append(ws, workload{n, "StatefulSet", s.ObjectMeta, s.Spec.Template.Spec, s.Spec.Template.Labels, s.Spec.Replicas})
	}
	for n, j := range r.Jobs {
		ws = append(ws, workload{n, "Job", j.ObjectMeta, j.Spec.Template.Spec, j.Spec.Template.Labels, nil})
	}
	slices.SortFunc(ws, func(a, b workload) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return ws
}

func workloadNamed(r *rendered, name string) (workload, bool) {
	for _, w := range workloads(r) {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

// selects reports whether sel matches a pod with these labels; a nil selector matches none.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

// envValue is where one variable of a container comes from.
type envValue struct {
	value  string                    // a literal, or a ConfigMap's value
	secret *corev1.SecretKeySelector // a Secret's key
	field  string                    // a field of the pod (metadata.name)
}

func (e envValue) set() bool { return e.value != "" || e.secret != nil || e.field != "" }

// effectiveEnv is the environment c starts with (less what its image sets): its envFrom
// ConfigMaps, resolved from r, then its env, which wins.
func effectiveEnv(t *testing.T, r *rendered, c corev1.Container) map[string]envValue {
	t.Helper()
	env := map[string]envValue{}
	for _, from := range c.EnvFrom {
		require.Nil(t, from.SecretRef, "%s: secrets come one variable at a time (secretKeyRef)", c.Name)
		require.NotNil(t, from.ConfigMapRef, c.Name)
		require.Empty(t, from.Prefix, c.Name)
		cm, ok := r.ConfigMaps[from.ConfigMapRef.Name]
		require.True(t, ok, "%s: ConfigMap %s is rendered", c.Name, from.ConfigMapRef.Name)
		for k, v := range cm.Data {
			env[k] = envValue{value: v}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envValue{value: e.Value}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = envValue{secret: e.ValueFrom.SecretKeyRef}
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = envValue{field: e.ValueFrom.FieldRef.FieldPath}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			cm, ok := r.ConfigMaps[e.ValueFrom.ConfigMapKeyRef.Name]
			require.True(t, ok, "%s: ConfigMap %s", c.Name, e.ValueFrom.ConfigMapKeyRef.Name)
			env[e.Name] = envValue{value: cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]}
		default:
			t.Fatalf("%s: %s comes from a source this test does not read", c.Name, e.Name)
		}
	}
	return env
}
