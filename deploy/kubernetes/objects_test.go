package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// rendered is one overlay decoded: every object, by kind and name.
type rendered struct {
	Deployments  map[string]*appsv1.Deployment
	StatefulSets map[string]*appsv1.StatefulSet
	Services     map[string]*corev1.Service
	ConfigMaps   map[string]*corev1.ConfigMap
	Secrets      map[string]*corev1.Secret
	Namespaces   map[string]*corev1.Namespace
	Jobs         map[string]*batchv1.Job
	PDBs         map[string]*policyv1.PodDisruptionBudget
	HPAs         map[string]*autoscalingv2.HorizontalPodAutoscaler
	Policies     map[string]*networkingv1.NetworkPolicy
}

// scheme knows the API types the manifests may use; any other kind is an error.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// decode reads every document of y strictly into its API type: an unknown kind, an
// unknown or duplicated field, or a value of the wrong type is an error, as the API server
// would answer with field validation Strict.
func decode(y []byte) (*rendered, error) {
	r := &rendered{
		Deployments: map[string]*appsv1.Deployment{}, StatefulSets: map[string]*appsv1.StatefulSet{},
		Services: map[string]*corev1.Service{}, ConfigMaps: map[string]*corev1.ConfigMap{},
		Secrets: map[string]*corev1.Secret{}, Namespaces: map[string]*corev1.Namespace{},
		Jobs: map[string]*batchv1.Job{}, PDBs: map[string]*policyv1.PodDisruptionBudget{},
		HPAs: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, Policies: map[string]*networkingv1.NetworkPolicy{},
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(y)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if err := r.add(obj); err != nil {
			return nil, fmt.Errorf("%s: %w", gvk, err)
		}
	}
}

func (r *rendered) add(obj runtime.Object) error {
	var name string
	var dup bool
	switch o := obj.(type) {
	case *appsv1.Deployment:
		name, dup = o.Name, r.Deployments[o.Name] != nil
		r.Deployments[o.Name] = o
	case *appsv1.StatefulSet:
		name, dup = o.Name, r.StatefulSets[o.Name] != nil
		r.StatefulSets[o.Name] = o
	case *corev1.Service:
		name, dup = o.Name, r.Services[o.Name] != nil
		r.Services[o.Name] = o
	case *corev1.ConfigMap:
		name, dup = o.Name, r.ConfigMaps[o.Name] != nil
		r.ConfigMaps[o.Name] = o
	case *corev1.Secret:
		name, dup = o.Name, r.Secrets[o.Name] != nil
		r.Secrets[o.Name] = o
	case *corev1.Namespace:
		name, dup = o.Name, r.Namespaces[o.Name] != nil
		r.Namespaces[o.Name] = o
	case *batchv1.Job:
		name, dup = o.Name, r.Jobs[o.Name] != nil
		r.Jobs[o.Name] = o
	case *policyv1.PodDisruptionBudget:
		name, dup = o.Name, r.PDBs[o.Name] != nil
		r.PDBs[o.Name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		name, dup = o.Name, r.HPAs[o.Name] != nil
		r.HPAs[o.Name] = o
	case *networkingv1.NetworkPolicy:
		name, dup = o.Name, r.Policies[o.Name] != nil
		r.Policies[o.Name] = o
	default:
		return fmt.Errorf("a %T, which the manifests' test does not check", obj)
	}
	if dup {
		return fmt.Errorf("%s twice", name)
	}
	return nil
}

// settingVar is one entry of `<svc> settings` (pkg/settings.Var).
type settingVar struct {
	Name       string `json:"name"`
	Default    string `json:"default"`
	HasDefault bool   `json:"has_default"`
	Required   bool   `json:"required"`
}

var (
	settingsOnce sync.Once
	settingsOf   map[string][]settingVar
	settingsErr  error
)

// serviceSettings is what each service of Images reads, by name, as its own binary says
// (`<svc> settings`, pkg/settings.Describe): the binaries are built from this checkout,
// in the go.work workspace, so a setting added to a service is seen here at once.
func serviceSettings(t *testing.T) map[string][]settingVar {
	t.Helper()
	settingsOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			settingsErr = err
			return
		}
		bin, err := os.MkdirTemp("", "latchkey-settings-")
		if err != nil {
			settingsErr = err
			return
		}
		defer func() { _ = os.RemoveAll(bin) }()
		args := []string{"build", "-o", bin + string(filepath.Separator)}
		for _, name := range Images {
			args = append(args, "./services/"+name+"/cmd/"+name)
		}
		build := exec.Command("go", args...)
		build.Dir = root
		build.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
		if out, err := build.CombinedOutput(); err != nil {
			settingsErr = fmt.Errorf("go %v: %w\n%s", args, err, out)
			return
		}
		settingsOf = map[string][]settingVar{}
		for _, name := range Images {
			cmd := exec.Command(filepath.Join(bin, name), "settings")
			cmd.Env = []string{} // what it describes does not depend on the environment
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				settingsErr = fmt.Errorf("%s settings: %w\n%s", name, err, stderr.String())
				return
			}
			var vars []settingVar
			if err := json.Unmarshal(out, &vars); err != nil {
				settingsErr = fmt.Errorf("%s settings: %w", name, err)
				return
			}
			settingsOf[name] = vars
		}
	})
	require.NoError(t, settingsErr)
	return settingsOf
}
