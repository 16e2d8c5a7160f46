package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// fleet is one rendered kustomization, every object decoded into its API type.
type fleet struct {
	dir string

	namespaces      map[string]*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	services        map[string]*corev1.Service
	deployments     map[string]*appsv1.Deployment
	statefulSets    map[string]*appsv1.StatefulSet
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	netpols         map[string]*networkingv1.NetworkPolicy
	scaledObjects   map[string]*scaledObject
}

// workload is a Deployment or a StatefulSet, seen through what the checks need.
type workload struct {
	kind, name, namespace string
	selector              *metav1.LabelSelector
	template              *corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + "/" + w.name }

// scheme knows the built-in API types the manifests may use. Anything else (but the
// KEDA ScaledObject, decoded into a local type) fails the render.
func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			t.Fatalf("build scheme: %v", err)
		}
	}
	return s
}

// render builds the kustomization in dir as `kustomize build dir` does and decodes
// every object strictly: unknown fields, duplicate fields, a case mismatch or an
// apiVersion/kind this project does not expect are errors.
func render(t *testing.T, dir string) *fleet {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	f := &fleet{
		dir:             dir,
		namespaces:      map[string]*corev1.Namespace{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps:      map[string]*corev1.ConfigMap{},
		secrets:         map[string]*corev1.Secret{},
		services:        map[string]*corev1.Service{},
		deployments:     map[string]*appsv1.Deployment{},
		statefulSets:    map[string]*appsv1.StatefulSet{},
		pdbs:            map[string]*policyv1.PodDisruptionBudget{},
		hpas:            map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		netpols:         map[string]*networkingv1.NetworkPolicy{},
		scaledObjects:   map[string]*scaledObject{},
	}
	scheme := newScheme(t)
	for _, r := range m.Resources() {
		gvk := r.GetGvk()
		id := fmt.Sprintf("%s %s/%s", dir, gvk.Kind, r.GetName())
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: marshal: %v", id, err)
		}
		var obj any
		if gvk.Group == "keda.sh" && gvk.Version == "v1alpha1" && gvk.Kind == "ScaledObject" {
			obj = &scaledObject{}
		} else {
			o, err := scheme.New(schema.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind})
			if err != nil {
				t.Errorf("%s: apiVersion %q kind %q is not a type these manifests may use: %v", id, gvk.ApiVersion(), gvk.Kind, err)
				continue
			}
			obj = o
		}
		strict, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			t.Errorf("%s: decode: %v", id, err)
			continue
		}
		for _, e := range strict {
			t.Errorf("%s: %v", id, e)
		}
		if r.GetName() == "" {
			t.Errorf("%s: no name", id)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			f.namespaces[o.Name] = o
		case *corev1.ServiceAccount:
			f.serviceAccounts[o.Name] = o
		case *corev1.ConfigMap:
			f.configMaps[o.Name] = o
		case *corev1.Secret:
			f.secrets[o.Name] = o
		case *corev1.Service:
			f.services[o.Name] = o
		case *appsv1.Deployment:
			f.deployments[o.Name] = o
		case *appsv1.StatefulSet:
			f.statefulSets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			f.pdbs[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			f.hpas[o.Name] = o
		case *networkingv1.NetworkPolicy:
			f.netpols[o.Name] = o
		case *scaledObject:
			f.scaledObjects[o.Metadata.Name] = o
		default:
			t.Errorf("%s: decoded into %T, which no check looks at: add it to type fleet", id, obj)
		}
	}
	return f
}

// workloads returns the Deployments and StatefulSets, sorted by name.
func (f *fleet) workloads() []workload {
	var ws []workload
	for _, d := range f.deployments {
		ws = append(ws, workload{"Deployment", d.Name, d.Namespace, d.Spec.Selector, &d.Spec.Template})
	}
	for _, s := range f.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, s.Namespace, s.Spec.Selector, &s.Spec.Template})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.String(), b.String()) })
	return ws
}

// selected returns the workloads whose pods sel selects.
func (f *fleet) selected(sel *metav1.LabelSelector) ([]workload, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	var ws []workload
	for _, w := range f.workloads() {
		if s.Matches(labels.Set(w.template.Labels)) {
			ws = append(ws, w)
		}
	}
	return ws, nil
}

// container returns the workload's container called name.
func (f *fleet) container(deployment, name string) (*corev1.Container, *appsv1.Deployment, error) {
	d, ok := f.deployments[deployment]
	if !ok {
		return nil, nil, fmt.Errorf("no Deployment %q", deployment)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c, d, nil
		}
	}
	return nil, nil, fmt.Errorf("Deployment %q has no container %q", deployment, name)
}

// env returns the value the kubelet would give variable name in container c: an
// explicit env entry wins over envFrom, a later envFrom source over an earlier one.
// Secret values come back as they are rendered (placeholders in this repository).
func (f *fleet) env(c *corev1.Container, name string) (string, bool, error) {
	for i := len(c.Env) - 1; i >= 0; i-- {
		e := c.Env[i]
		if e.Name != name {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			return e.Value, true, nil
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := f.configMaps[ref.Name]
			if !ok {
				return "", false, fmt.Errorf("%s: no ConfigMap %q", name, ref.Name)
			}
			v, ok := cm.Data[ref.Key]
			return v, ok, nil
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := f.secrets[ref.Name]
			if !ok {
				return "", false, fmt.Errorf("%s: no Secret %q", name, ref.Name)
			}
			v, ok := s.Data[ref.Key]
			return string(v), ok, nil
		default:
			return "", false, fmt.Errorf("%s: set from a field or resource, not a literal", name)
		}
	}
	for i := len(c.EnvFrom) - 1; i >= 0; i-- {
		src := c.EnvFrom[i]
		key, ok := strings.CutPrefix(name, src.Prefix)
		if !ok {
			continue
		}
		switch {
		case src.ConfigMapRef != nil:
			cm, found := f.configMaps[src.ConfigMapRef.Name]
			if !found {
				return "", false, fmt.Errorf("envFrom: no ConfigMap %q", src.ConfigMapRef.Name)
			}
			if v, ok := cm.Data[key]; ok {
				return v, true, nil
			}
		case src.SecretRef != nil:
			s, found := f.secrets[src.SecretRef.Name]
			if !found {
				return "", false, fmt.Errorf("envFrom: no Secret %q", src.SecretRef.Name)
			}
			if v, ok := s.Data[key]; ok {
				return string(v), true, nil
			}
		}
	}
	return "", false, nil
}

// envNames lists every variable container c gets, explicit or from envFrom.
func (f *fleet) envNames(c *corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			if cm, ok := f.configMaps[src.ConfigMapRef.Name]; ok {
				for k := range cm.Data {
					names = append(names, src.Prefix+k)
				}
			}
		case src.SecretRef != nil:
			if s, ok := f.secrets[src.SecretRef.Name]; ok {
				for k := range s.Data {
					names = append(names, src.Prefix+k)
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
