package deploy_test

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"imapcopy.dev/pkg/syncapi"
	"imapcopy.dev/pkg/taskqueue"
	"imapcopy.dev/pkg/taskseal"
)

// kustomizations lists what CI renders and checks, with the NATS Helm values each
// one is installed with (later files override earlier ones, as with helm -f).
var kustomizations = []struct {
	dir          string
	natsValues   []string
	pinnedImages bool // every image names a release tag
}{
	{dir: "base", natsValues: []string{"nats/values.yaml"}},
	{dir: "overlays/dev", natsValues: []string{"nats/values.yaml", "nats/values-dev.yaml"}},
	{dir: "overlays/prod", natsValues: []string{"nats/values.yaml"}, pinnedImages: true},
}

// The workloads and containers the checks know by name.
const (
	apiDeployment    = "imapcopy-api"
	apiContainer     = "api"
	copierDeployment = "imapcopy-copier"
	copierContainer  = "copier"
	redisStatefulSet = "redis"
)

// natsChartPods are the labels of the NATS chart's server pods: installed by Helm,
// not rendered here, but selected by this repository's NetworkPolicies.
var natsChartPods = map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats"}

func TestKustomizations(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			f := render(t, k.dir)
			nats := loadNATSValues(t, k.natsValues)
			for _, c := range []struct {
				name string
				fn   func(*testing.T, *fleet)
			}{
				{"hardened", checkHardened},
				{"images", func(t *testing.T, f *fleet) { checkImages(t, f, k.pinnedImages) }},
				{"probes", checkProbes},
				{"references", checkReferences},
				{"selectors", checkSelectors},
				{"networkpolicies", checkNetworkPolicies},
				{"queue", func(t *testing.T, f *fleet) { checkQueue(t, f, nats) }},
				{"shutdown", checkShutdown},
				{"files", checkFiles},
				{"apiconfig", checkAPIConfig},
				{"secrets", checkSecrets},
				{"documented", checkDocumentedEnv},
				{"redis", checkRedis},
			} {
				t.Run(c.name, func(t *testing.T) { c.fn(t, f) })
			}
		})
	}
}

// allContainers returns a workload's init and regular containers.
func allContainers(w workload) []*corev1.Container {
	var cs []*corev1.Container
	for i := range w.template.Spec.InitContainers {
		cs = append(cs, &w.template.Spec.InitContainers[i])
	}
	for i := range w.template.Spec.Containers {
		cs = append(cs, &w.template.Spec.Containers[i])
	}
	return cs
}

// checkHardened: every pod meets the "restricted" Pod Security Standard and more:
// read-only root file system, no service account token, requests and limits.
func checkHardened(t *testing.T, f *fleet) {
	for _, w := range f.workloads() {
		ps := w.template.Spec
		psc := ps.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			t.Errorf("%s: uses the host's network, PID or IPC namespace", w)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false (no imapcopy pod talks to the Kubernetes API)", w)
		}
		for _, c := range allContainers(w) {
			id := fmt.Sprintf("%s container %q", w, c.Name)
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", id)
				continue
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", id)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", id)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", id)
			}
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = psc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", id)
			}
			for _, uid := range []*int64{sc.RunAsUser, psc.RunAsUser} {
				if uid != nil && *uid == 0 {
					t.Errorf("%s: runs as user 0", id)
				}
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: capabilities do not drop ALL", id)
			} else if len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: adds capabilities %v", id, sc.Capabilities.Add)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
				t.Errorf("%s: seccompProfile is not RuntimeDefault (or Localhost)", id)
			}
			checkResources(t, id, c.Resources)
		}
	}
}

func checkResources(t *testing.T, id string, r corev1.ResourceRequirements) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := r.Requests[name]
		if !ok || req.IsZero() {
			t.Errorf("%s: no %s request", id, name)
		}
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s is above its limit %s", id, name, req.String(), lim.String())
		}
	}
	if lim, ok := r.Limits[corev1.ResourceMemory]; !ok || lim.IsZero() {
		t.Errorf("%s: no memory limit", id)
	}
}

func checkImages(t *testing.T, f *fleet, pinned bool) {
	for _, w := range f.workloads() {
		for _, c := range allContainers(w) {
			if c.Image == "" {
				t.Errorf("%s container %q: no image", w, c.Name)
				continue
			}
			if !pinned {
				continue
			}
			ref := c.Image
			if _, digest, ok := strings.Cut(ref, "@"); ok && digest != "" {
				continue
			}
			tag := ""
			if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
				tag = ref[i+1:]
			}
			if tag == "" || tag == "latest" {
				t.Errorf("%s container %q: image %q names no release (a tag other than latest, or a digest)", w, c.Name, ref)
			}
		}
	}
}

// containerPort resolves a probe's or a Service's port (a number or a name) in c.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// checkProbes: every long-running container has readiness and liveness probes, each
// probe has exactly one handler, on a port the container declares. A gRPC probe must
// not target a TLS port: the kubelet's gRPC probe speaks plaintext only.
func checkProbes(t *testing.T, f *fleet) {
	for _, w := range f.workloads() {
		for i := range w.template.Spec.Containers {
			c := &w.template.Spec.Containers[i]
			id := fmt.Sprintf("%s container %q", w, c.Name)
			if c.ReadinessProbe == nil {
				t.Errorf("%s: no readinessProbe", id)
			}
			if c.LivenessProbe == nil {
				t.Errorf("%s: no livenessProbe", id)
			}
			for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if p == nil {
					continue
				}
				h := p.ProbeHandler
				n := 0
				for _, set := range []bool{h.Exec != nil, h.HTTPGet != nil, h.TCPSocket != nil, h.GRPC != nil} {
					if set {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s %s: %d handlers, want exactly 1 (a patch that adds one must null the other)", id, name, n)
				}
				var port intstr.IntOrString
				switch {
				case h.HTTPGet != nil:
					port = h.HTTPGet.Port
				case h.TCPSocket != nil:
					port = h.TCPSocket.Port
				case h.GRPC != nil:
					port = intstr.FromInt32(h.GRPC.Port)
				default:
					continue
				}
				num, ok := containerPort(c, port)
				if !ok {
					t.Errorf("%s %s: port %s is not one of the container's ports", id, name, port.String())
					continue
				}
				if h.GRPC != nil {
					cert, _, err := f.env(c, "IMAPCOPY_TLS_CERT_FILE")
					if err != nil {
						t.Errorf("%s: %v", id, err)
					}
					addr, _, _ := f.env(c, "IMAPCOPY_GRPC_ADDR")
					if _, p, err := net.SplitHostPort(addr); cert != "" && err == nil && p == strconv.Itoa(int(num)) {
						t.Errorf("%s %s: gRPC probe on port %d, which serves TLS (IMAPCOPY_TLS_CERT_FILE=%s): the kubelet's gRPC probe speaks plaintext only; probe the admin port's /readyz and /healthz", id, name, num, cert)
					}
				}
			}
		}
	}
}

// checkReferences: every ConfigMap, Secret, key, volume and service account a pod
// names exists in the render (kustomize rewrote generated names consistently).
func checkReferences(t *testing.T, f *fleet) {
	for _, w := range f.workloads() {
		ps := w.template.Spec
		if sa := ps.ServiceAccountName; sa != "" && sa != "default" {
			if _, ok := f.serviceAccounts[sa]; !ok {
				t.Errorf("%s: no ServiceAccount %q", w, sa)
			}
		}
		volumes := map[string]bool{}
		for _, v := range ps.Volumes {
			volumes[v.Name] = true
			switch {
			case v.Secret != nil:
				s, ok := f.secrets[v.Secret.SecretName]
				if !ok {
					t.Errorf("%s volume %q: no Secret %q", w, v.Name, v.Secret.SecretName)
					continue
				}
				for _, it := range v.Secret.Items {
					if _, ok := s.Data[it.Key]; !ok {
						t.Errorf("%s volume %q: Secret %q has no key %q", w, v.Name, s.Name, it.Key)
					}
				}
			case v.ConfigMap != nil:
				cm, ok := f.configMaps[v.ConfigMap.Name]
				if !ok {
					t.Errorf("%s volume %q: no ConfigMap %q", w, v.Name, v.ConfigMap.Name)
					continue
				}
				for _, it := range v.ConfigMap.Items {
					if _, ok := cm.Data[it.Key]; !ok {
						t.Errorf("%s volume %q: ConfigMap %q has no key %q", w, v.Name, cm.Name, it.Key)
					}
				}
			}
		}
		if s, ok := f.statefulSets[w.name]; ok && w.kind == "StatefulSet" {
			for _, pvc := range s.Spec.VolumeClaimTemplates {
				volumes[pvc.Name] = true
			}
		}
		for _, c := range allContainers(w) {
			id := fmt.Sprintf("%s container %q", w, c.Name)
			for _, m := range c.VolumeMounts {
				if !volumes[m.Name] {
					t.Errorf("%s: mounts volume %q, which the pod does not have", id, m.Name)
				}
			}
			for _, src := range c.EnvFrom {
				if r := src.ConfigMapRef; r != nil {
					if _, ok := f.configMaps[r.Name]; !ok && (r.Optional == nil || !*r.Optional) {
						t.Errorf("%s: envFrom names no ConfigMap %q", id, r.Name)
					}
				}
				if r := src.SecretRef; r != nil {
					if _, ok := f.secrets[r.Name]; !ok && (r.Optional == nil || !*r.Optional) {
						t.Errorf("%s: envFrom names no Secret %q", id, r.Name)
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.FieldRef != nil || e.ValueFrom.ResourceFieldRef != nil {
					continue
				}
				if _, ok, err := f.env(c, e.Name); err != nil || !ok {
					t.Errorf("%s: env %s does not resolve (err %v)", id, e.Name, err)
				}
			}
		}
	}
	namespaced := slices.Concat(objects(f.serviceAccounts), objects(f.configMaps), objects(f.secrets),
		objects(f.services), objects(f.deployments), objects(f.statefulSets), objects(f.pdbs),
		objects(f.hpas), objects(f.netpols))
	for _, so := range f.scaledObjects {
		namespaced = append(namespaced, &so.Metadata)
	}
	for _, o := range namespaced {
		if o.GetNamespace() == "" {
			t.Errorf("%s: no namespace", o.GetName())
		} else if len(f.namespaces) > 0 && f.namespaces[o.GetNamespace()] == nil {
			t.Errorf("%s: namespace %q is not the one the kustomization creates", o.GetName(), o.GetNamespace())
		}
	}
}

// objects returns the values of a map of API objects.
func objects[T metav1.Object](m map[string]T) []metav1.Object {
	var out []metav1.Object
	for _, o := range m {
		out = append(out, o)
	}
	return out
}

// checkSelectors: every selector selects the pods it is for, and what scales a
// workload owns its replica count.
func checkSelectors(t *testing.T, f *fleet) {
	for _, w := range f.workloads() {
		ws, err := f.selected(w.selector)
		if err != nil {
			t.Errorf("%s: selector: %v", w, err)
		} else if !slices.ContainsFunc(ws, func(x workload) bool { return x.String() == w.String() }) {
			t.Errorf("%s: its selector does not select its own pod template", w)
		} else if len(ws) != 1 {
			t.Errorf("%s: its selector also selects %v", w, ws)
		}
	}
	for _, s := range f.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s: no selector", s.Name)
			continue
		}
		ws, _ := f.selected(&metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(ws) == 0 {
			t.Errorf("Service %s: selects no pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			for _, w := range ws {
				found := false
				for _, c := range w.template.Spec.Containers {
					if _, ok := containerPort(&c, target); ok {
						found = true
					}
				}
				if !found {
					t.Errorf("Service %s port %q: target %s is not a port of %s", s.Name, p.Name, target.String(), w)
				}
			}
		}
	}
	for _, p := range f.pdbs {
		if ws, err := f.selected(p.Spec.Selector); err != nil || len(ws) == 0 {
			t.Errorf("PodDisruptionBudget %s: selects no pods (err %v)", p.Name, err)
		}
	}
	scaled := map[string]string{} // Deployment -> what scales it
	for _, h := range f.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || f.deployments[ref.Name] == nil {
			t.Errorf("HorizontalPodAutoscaler %s: target %s/%s is not a Deployment here", h.Name, ref.Kind, ref.Name)
		}
		if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HorizontalPodAutoscaler %s: minReplicas %d > maxReplicas %d", h.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		scaled[ref.Name] = "HorizontalPodAutoscaler " + h.Name
	}
	for _, so := range f.scaledObjects {
		ref := so.Spec.ScaleTargetRef
		if (ref.Kind != "" && ref.Kind != "Deployment") || f.deployments[ref.Name] == nil {
			t.Errorf("ScaledObject %s: target %s/%s is not a Deployment here", so.Metadata.Name, ref.Kind, ref.Name)
		}
		if lo, hi := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount; lo != nil && hi != nil && *lo > *hi {
			t.Errorf("ScaledObject %s: minReplicaCount %d > maxReplicaCount %d", so.Metadata.Name, *lo, *hi)
		}
		if other, ok := scaled[ref.Name]; ok {
			t.Errorf("ScaledObject %s and %s both scale Deployment %s", so.Metadata.Name, other, ref.Name)
		}
		scaled[ref.Name] = "ScaledObject " + so.Metadata.Name
	}
	for name, by := range scaled {
		if d := f.deployments[name]; d != nil && d.Spec.Replicas != nil {
			t.Errorf("Deployment %s: sets replicas (%d) although %s owns the count: every apply would reset it", name, *d.Spec.Replicas, by)
		}
	}
}

// checkNetworkPolicies: the namespace denies by default; every policy selects pods
// (of this render, or the NATS chart's); named ingress ports exist on those pods.
func checkNetworkPolicies(t *testing.T, f *fleet) {
	denyAll := false
	for _, np := range f.netpols {
		sel := np.Spec.PodSelector
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
			if len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 &&
				slices.Contains(np.Spec.PolicyTypes, "Ingress") && slices.Contains(np.Spec.PolicyTypes, "Egress") {
				denyAll = true
			}
			continue
		}
		ws, err := f.selected(&sel)
		if err != nil {
			t.Errorf("NetworkPolicy %s: %v", np.Name, err)
			continue
		}
		if len(ws) == 0 {
			if !mapsEqual(sel.MatchLabels, natsChartPods) || len(sel.MatchExpressions) > 0 {
				t.Errorf("NetworkPolicy %s: selects no pods", np.Name)
			}
			continue
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				for _, w := range ws {
					found := false
					for _, c := range w.template.Spec.Containers {
						if _, ok := containerPort(&c, *p.Port); ok {
							found = true
						}
					}
					if !found {
						t.Errorf("NetworkPolicy %s: ingress port %q is not a port of %s", np.Name, p.Port.StrVal, w)
					}
				}
			}
		}
	}
	if !denyAll {
		t.Errorf("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
	}
	// Pods that dial customer-supplied hosts must never reach the cluster's private
	// ranges through their "anywhere" egress rule.
	private := map[string][]string{
		"0.0.0.0/0": {"10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"},
		"::/0":      {"::1/128", "fc00::/7", "fe80::/10"},
	}
	for _, np := range f.netpols {
		for _, rule := range np.Spec.Egress {
			for _, peer := range rule.To {
				if peer.IPBlock == nil {
					continue
				}
				want, ok := private[peer.IPBlock.CIDR]
				if !ok {
					continue
				}
				for _, cidr := range want {
					if !slices.Contains(peer.IPBlock.Except, cidr) {
						t.Errorf("NetworkPolicy %s: egress to %s does not except %s", np.Name, peer.IPBlock.CIDR, cidr)
					}
				}
			}
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// natsValues is what the checks read of the NATS chart's values.
type natsValues map[string]any

func loadNATSValues(t *testing.T, files []string) natsValues {
	t.Helper()
	merged := map[string]any{}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("NATS values: %v", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("NATS values %s: %v", name, err)
		}
		mergeValues(merged, v)
	}
	return merged
}

// mergeValues merges src into dst the way Helm merges values files: maps deeply,
// anything else replaced.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// get returns the value at a dotted path ("config.cluster.replicas").
func (v natsValues) get(p string) any {
	var cur any = map[string]any(v)
	for _, k := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// nodes is how many NATS servers the values run.
func (v natsValues) nodes() int {
	if v.get("config.cluster.enabled") != true {
		return 1
	}
	n, _ := v.get("config.cluster.replicas").(float64)
	return int(n)
}

// checkQueue: the copier's KEDA trigger reads the lag of exactly the stream and
// consumer that pkg/taskqueue creates, one pod per IMAPCOPY_COPIER_CONCURRENCY
// tasks, from the monitoring endpoint the NATS values turn on; the queue's replicas
// fit the NATS cluster, which keeps JetStream on file storage synced on every write.
func checkQueue(t *testing.T, f *fleet, nats natsValues) {
	for p, want := range map[string]any{
		"fullnameOverride":                       "nats",
		"config.jetstream.enabled":               true,
		"config.jetstream.fileStore.enabled":     true,
		"config.jetstream.fileStore.dir":         "/data",
		"config.jetstream.fileStore.pvc.enabled": true,
		"config.jetstream.memoryStore.enabled":   false,
		"config.jetstream.merge.sync_interval":   "always",
		"config.monitor.enabled":                 true,
		"config.monitor.port":                    float64(8222),
		"config.cluster.enabled":                 nats.nodes() > 1,
		"podDisruptionBudget.enabled":            nats.nodes() > 1,
		"natsBox.enabled":                        false,
	} {
		if got := nats.get(p); got != want {
			t.Errorf("NATS values %s = %v, want %v", p, got, want)
		}
	}
	for _, p := range []string{"container.image.tag", "container.merge.resources.limits.memory", "podTemplate.topologySpreadConstraints"} {
		if nats.get(p) == nil {
			t.Errorf("NATS values: %s is not set", p)
		}
	}
	if n := nats.nodes(); n != 1 && n < 3 {
		t.Errorf("NATS values: %d nodes: a JetStream cluster needs 3 or more for a quorum that survives one loss", n)
	}
	size, err1 := resource.ParseQuantity(fmt.Sprint(nats.get("config.jetstream.fileStore.pvc.size")))
	max, err2 := resource.ParseQuantity(fmt.Sprint(nats.get("config.jetstream.fileStore.maxSize")))
	if err1 != nil || err2 != nil || max.Cmp(size) >= 0 {
		t.Errorf("NATS values: fileStore.maxSize %v must be below the PVC size %v (errors %v, %v)", max.String(), size.String(), err1, err2)
	}

	if len(f.scaledObjects) != 1 {
		t.Fatalf("%d ScaledObjects, want 1 (the copier's)", len(f.scaledObjects))
	}
	copier, _, err := f.container(copierDeployment, copierContainer)
	if err != nil {
		t.Fatal(err)
	}
	for _, so := range f.scaledObjects {
		if so.Spec.ScaleTargetRef.Name != copierDeployment {
			t.Errorf("ScaledObject %s scales %q, want %q", so.Metadata.Name, so.Spec.ScaleTargetRef.Name, copierDeployment)
		}
		if len(so.Spec.Triggers) != 1 {
			t.Fatalf("ScaledObject %s: %d triggers, want 1", so.Metadata.Name, len(so.Spec.Triggers))
		}
		tr := so.Spec.Triggers[0]
		if tr.Type != "nats-jetstream" {
			t.Errorf("trigger type %q, want nats-jetstream", tr.Type)
		}
		allowed := []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}
		for k := range tr.Metadata {
			if !slices.Contains(allowed, k) {
				t.Errorf("trigger metadata %q: not a nats-jetstream parameter (%v)", k, allowed)
			}
		}
		for k, want := range map[string]string{
			"stream":   taskqueue.StreamName,
			"consumer": taskqueue.ConsumerName,
			"account":  "$G", // NATS' global account: the chart's default without auth
			"useHttps": "false",
		} {
			if got := tr.Metadata[k]; got != want {
				t.Errorf("trigger %s = %q, want %q", k, got, want)
			}
		}
		conc, ok, err := f.env(copier, "IMAPCOPY_COPIER_CONCURRENCY")
		if err != nil || !ok {
			t.Errorf("copier: IMAPCOPY_COPIER_CONCURRENCY is not set in the manifest (err %v): the lag threshold must match it", err)
		} else if tr.Metadata["lagThreshold"] != conc {
			t.Errorf("trigger lagThreshold = %q, want the copier's IMAPCOPY_COPIER_CONCURRENCY %q (one pod per that many tasks)", tr.Metadata["lagThreshold"], conc)
		}
		if n, err := strconv.Atoi(tr.Metadata["activationLagThreshold"]); err != nil || n != 0 {
			t.Errorf("trigger activationLagThreshold = %q, want 0 (a single queued task must wake the copiers)", tr.Metadata["activationLagThreshold"])
		}
		host, port, err := net.SplitHostPort(tr.Metadata["natsServerMonitoringEndpoint"])
		if err != nil {
			t.Errorf("trigger natsServerMonitoringEndpoint: %v", err)
		} else {
			want := fmt.Sprintf("nats-headless.%s.svc.cluster.local", so.Metadata.Namespace)
			if host != want {
				t.Errorf("trigger endpoint host %q, want %q: KEDA runs in its own namespace and must reach each node (nats-N.nats-headless...)", host, want)
			}
			if port != fmt.Sprint(nats.get("config.monitor.port")) {
				t.Errorf("trigger endpoint port %s, want the NATS monitor port %v", port, nats.get("config.monitor.port"))
			}
		}
	}

	for _, d := range []struct{ deploy, container string }{{apiDeployment, apiContainer}, {copierDeployment, copierContainer}} {
		c, _, err := f.container(d.deploy, d.container)
		if err != nil {
			t.Error(err)
			continue
		}
		v, ok, _ := f.env(c, "IMAPCOPY_QUEUE_REPLICAS")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Errorf("%s: IMAPCOPY_QUEUE_REPLICAS = %q, want a number", d.deploy, v)
		} else if n != nats.nodes() {
			t.Errorf("%s: IMAPCOPY_QUEUE_REPLICAS = %d, want %d: one replica of the task stream on each NATS node", d.deploy, n, nats.nodes())
		}
		url, _, _ := f.env(c, "IMAPCOPY_NATS_URL")
		if !strings.HasPrefix(url, "nats://nats:") && !strings.HasPrefix(url, "nats://nats.") {
			t.Errorf("%s: IMAPCOPY_NATS_URL = %q, want the chart's client service nats", d.deploy, url)
		}
	}
}

// checkShutdown: the kubelet waits for a stopping pod longer than the service takes
// to shut down (IMAPCOPY_SHUTDOWN_TIMEOUT) plus its preStop pause, with a margin.
func checkShutdown(t *testing.T, f *fleet) {
	const margin = 5 * time.Second
	for _, d := range []struct{ deploy, container string }{{apiDeployment, apiContainer}, {copierDeployment, copierContainer}} {
		c, dep, err := f.container(d.deploy, d.container)
		if err != nil {
			t.Error(err)
			continue
		}
		v, ok, err := f.env(c, "IMAPCOPY_SHUTDOWN_TIMEOUT")
		if err != nil || !ok {
			t.Errorf("%s: IMAPCOPY_SHUTDOWN_TIMEOUT is not set in the manifest (err %v)", d.deploy, err)
			continue
		}
		shutdown, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s: IMAPCOPY_SHUTDOWN_TIMEOUT %q: %v", d.deploy, v, err)
			continue
		}
		var preStop time.Duration
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		grace := 30 * time.Second // Kubernetes' default
		if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		if grace < preStop+shutdown+margin {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want at least preStop %v + IMAPCOPY_SHUTDOWN_TIMEOUT %v + %v", d.deploy, grace, preStop, shutdown, margin)
		}
	}
}

// checkFiles: every IMAPCOPY_*_FILE a container is given names a file that a
// mounted Secret or ConfigMap provides.
func checkFiles(t *testing.T, f *fleet) {
	for _, w := range f.workloads() {
		for _, c := range allContainers(w) {
			for _, name := range f.envNames(c) {
				if !strings.HasPrefix(name, "IMAPCOPY_") || !strings.HasSuffix(name, "_FILE") {
					continue
				}
				file, _, err := f.env(c, name)
				if err != nil {
					t.Errorf("%s: %v", w, err)
				}
				if file == "" {
					continue
				}
				if err := f.provides(w, c, file); err != nil {
					t.Errorf("%s container %q: %s=%s: %v", w, c.Name, name, file, err)
				}
			}
		}
	}
}

// provides reports whether file exists in container c of w through a Secret or
// ConfigMap volume.
func (f *fleet) provides(w workload, c *corev1.Container, file string) error {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if m.SubPath != "" {
			if file == m.MountPath {
				rel, ok = m.SubPath, true
			} else {
				continue
			}
		}
		if !ok {
			continue
		}
		for _, v := range w.template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			var keys map[string]bool
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				s := f.secrets[v.Secret.SecretName]
				if s == nil {
					return fmt.Errorf("volume %q: no Secret %q", v.Name, v.Secret.SecretName)
				}
				keys = map[string]bool{}
				for k := range s.Data {
					keys[k] = true
				}
				items = v.Secret.Items
			case v.ConfigMap != nil:
				cm := f.configMaps[v.ConfigMap.Name]
				if cm == nil {
					return fmt.Errorf("volume %q: no ConfigMap %q", v.Name, v.ConfigMap.Name)
				}
				keys = map[string]bool{}
				for k := range cm.Data {
					keys[k] = true
				}
				items = v.ConfigMap.Items
			default:
				return fmt.Errorf("volume %q is neither a Secret nor a ConfigMap", v.Name)
			}
			if len(items) > 0 {
				for _, it := range items {
					if it.Path == rel {
						return nil
					}
				}
				return fmt.Errorf("volume %q maps no item to %q", v.Name, rel)
			}
			if keys[rel] {
				return nil
			}
			return fmt.Errorf("volume %q has no key %q", v.Name, rel)
		}
	}
	return fmt.Errorf("no volume is mounted at %s", path.Dir(file))
}

// checkAPIConfig runs the api's own configuration check (pkg/syncapi) on the
// environment the manifest gives the api container: a value that does not parse, a
// gRPC listener on every address without TLS or tokens, fails here, not at rollout.
func checkAPIConfig(t *testing.T, f *fleet) {
	c, _, err := f.container(apiDeployment, apiContainer)
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(name string) string {
		v, _, err := f.env(c, name)
		if err != nil {
			t.Errorf("api env: %v", err)
		}
		return v
	}
	var cfg syncapi.Config
	fs := flag.NewFlagSet("imapcopy-api", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs, getenv)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(); err != nil {
		t.Errorf("the api would refuse this configuration: %v", err)
	}
	if _, port, err := net.SplitHostPort(cfg.GRPCAddr); err != nil {
		t.Errorf("IMAPCOPY_GRPC_ADDR %q: %v", cfg.GRPCAddr, err)
	} else if p, _ := strconv.Atoi(port); !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == "grpc" && int(cp.ContainerPort) == p }) {
		t.Errorf("IMAPCOPY_GRPC_ADDR %q: not the container port named grpc", cfg.GRPCAddr)
	}
	for _, cc := range []*corev1.Container{c} {
		addr, _, _ := f.env(cc, "IMAPCOPY_ADMIN_ADDR")
		if _, port, err := net.SplitHostPort(addr); err != nil {
			t.Errorf("IMAPCOPY_ADMIN_ADDR %q: %v", addr, err)
		} else if p, _ := strconv.Atoi(port); !slices.ContainsFunc(cc.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == "admin" && int(cp.ContainerPort) == p }) {
			t.Errorf("IMAPCOPY_ADMIN_ADDR %q: not the container port named admin", addr)
		}
	}
}

// placeholder marks every secret value in this repository.
const placeholder = "REPLACE-ME"

// checkSecrets: the repository holds no secret: every Secret value is a marked
// placeholder, the task key placeholder is not a usable key (the services refuse
// to start with it), and the Redis password placeholders agree.
func checkSecrets(t *testing.T, f *fleet) {
	if len(f.secrets) == 0 {
		t.Fatal("no Secrets rendered")
	}
	for _, s := range f.secrets {
		for k, v := range s.Data {
			if !strings.Contains(string(v), placeholder) {
				t.Errorf("Secret %s key %s: not a %s placeholder: real secrets never go into this repository", s.Name, k, placeholder)
			}
		}
	}
	for _, s := range f.secrets {
		if !strings.HasPrefix(s.Name, "imapcopy-task-keys") {
			continue
		}
		if _, err := taskseal.ParseKeyring(s.Data["task-keys"]); err == nil {
			t.Errorf("Secret %s: the placeholder parses as a key file: a deployment that forgets to replace it would run with a key known to everyone", s.Name)
		}
	}
	var auth, url string
	for _, s := range f.secrets {
		if strings.HasPrefix(s.Name, "redis-auth") {
			auth, url = string(s.Data["auth.conf"]), string(s.Data["url"])
		}
	}
	m := regexp.MustCompile(`(?m)^requirepass\s+(\S+)`).FindStringSubmatch(auth)
	if m == nil {
		t.Fatalf("redis-auth auth.conf sets no requirepass")
	}
	if !strings.Contains(url, ":"+m[1]+"@") {
		t.Errorf("redis-auth: url %q does not carry the password that auth.conf requires", url)
	}
}

// checkRedis: the official image, 7.0 or later (the code needs SET NX PX and Lua,
// nothing newer), persistence on, no eviction, maxmemory under the memory limit.
func checkRedis(t *testing.T, f *fleet) {
	s, ok := f.statefulSets[redisStatefulSet]
	if !ok {
		t.Fatalf("no StatefulSet %s", redisStatefulSet)
	}
	c := &s.Spec.Template.Spec.Containers[0]
	repo, tag, _ := strings.Cut(c.Image, ":")
	if repo != "redis" && repo != "docker.io/library/redis" {
		t.Errorf("redis image %q: want the official image", c.Image)
	}
	var major, minor int
	if _, err := fmt.Sscanf(tag, "%d.%d", &major, &minor); err != nil || major < 7 {
		t.Errorf("redis image tag %q: want 7.0 or later", tag)
	}
	var conf string
	for _, cm := range f.configMaps {
		if strings.HasPrefix(cm.Name, "redis-config") {
			conf = cm.Data["redis.conf"]
		}
	}
	for _, line := range []string{"appendonly yes", "maxmemory-policy noeviction", "dir /data"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `\s*$`).MatchString(conf) {
			t.Errorf("redis.conf lacks %q", line)
		}
	}
	i := slices.Index(c.Args, "--maxmemory")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("redis args %q: no --maxmemory", c.Args)
	}
	mm, err := resource.ParseQuantity(strings.TrimSuffix(strings.ToUpper(c.Args[i+1]), "B") + "i")
	lim := c.Resources.Limits[corev1.ResourceMemory]
	if err != nil || mm.Cmp(lim) >= 0 {
		t.Errorf("redis --maxmemory %s must be below the container's memory limit %s (err %v)", c.Args[i+1], lim.String(), err)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		for _, pvc := range s.Spec.VolumeClaimTemplates {
			if m.Name == pvc.Name && m.MountPath == "/data" {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("redis: /data is not on a persistent volume claim")
	}
}

// services maps the imapcopy containers to the README that documents their
// environment: the variable names are a contract (operators script them).
var services = []struct{ deploy, container, readme string }{
	{apiDeployment, apiContainer, "../services/api/README.md"},
	{copierDeployment, copierContainer, "../services/copier/README.md"},
}

// checkDocumentedEnv: every IMAPCOPY_ variable a container gets is one its service
// documents, so that a misspelt or retired name cannot sit silently in a manifest.
func checkDocumentedEnv(t *testing.T, f *fleet) {
	for _, s := range services {
		doc, err := os.ReadFile(s.readme)
		if err != nil {
			t.Errorf("%s: %v", s.deploy, err)
			continue
		}
		documented := map[string]bool{}
		for _, m := range regexp.MustCompile(`IMAPCOPY_[A-Z0-9_]+`).FindAll(doc, -1) {
			documented[string(m)] = true
		}
		c, _, err := f.container(s.deploy, s.container)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, name := range f.envNames(c) {
			if strings.HasPrefix(name, "IMAPCOPY_") && !documented[name] {
				t.Errorf("%s: %s is not documented in %s", s.deploy, name, s.readme)
			}
		}
	}
}
