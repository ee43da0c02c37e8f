package scan

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Workload is a controller (Deployment, StatefulSet, DaemonSet, ReplicaSet,
// Job, CronJob) or a bare Pod, with its pod template's labels and
// annotations. Pods and ReplicaSets owned by a controller in the input are
// not workloads of their own: findings name the controller.
type Workload struct {
	Object         *Object
	PodLabels      map[string]string
	PodAnnotations map[string]string
	ServiceAccount string
	Containers     []Container
	PodRunAsUser   *int64
}

// Container is one app container of a workload's pod template.
type Container struct {
	Name      string
	Ports     []int
	RunAsUser *int64
}

// Namespace is the Namespace object for name, or nil when the input has no
// such object.
func (m *Model) Namespace(name string) *Object { return m.namespaces[name] }

// Service is a Kubernetes Service and its ports.
type Service struct {
	Object   *Object
	Selector map[string]string
	Ports    []ServicePort
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name        string
	Port        int
	TargetPort  string // number or name, as written
	AppProtocol string
}

// Model is the scanner's view of a cluster: every object, indexed by kind
// and namespace, with workloads and services resolved. Rules read it and
// never change it.
type Model struct {
	Objects []*Object
	// Now is the evaluation time for certificate checks.
	Now time.Time

	byKind     map[string][]*Object
	namespaces map[string]*Object
	nsNames    []string
	workloads  []*Workload
	wlByNS     map[string][]*Workload
	services   []*Service
	memo       map[any]any
}

var workloadKinds = map[string]bool{
	"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true,
	"Job": true, "CronJob": true, "Pod": true, "DeploymentConfig": true, "ReplicationController": true,
}

// NewModel indexes objects. now is the evaluation time.
func NewModel(objs []*Object, now time.Time) *Model {
	m := &Model{
		Objects:    objs,
		Now:        now,
		byKind:     map[string][]*Object{},
		namespaces: map[string]*Object{},
		wlByNS:     map[string][]*Workload{},
		memo:       map[any]any{},
	}
	present := map[Ref]bool{}
	for _, o := range objs {
		m.byKind[o.Kind] = append(m.byKind[o.Kind], o)
		present[o.Ref()] = true
		if o.Kind == "Namespace" {
			m.namespaces[o.Name] = o
		}
	}
	names := map[string]bool{}
	for _, o := range objs {
		if o.Namespace != "" {
			names[o.Namespace] = true
		}
		if o.Kind == "Namespace" {
			names[o.Name] = true
		}
	}
	for n := range names {
		m.nsNames = append(m.nsNames, n)
	}
	sort.Strings(m.nsNames)
	for _, o := range objs {
		if workloadKinds[o.Kind] && !ownedInInput(o, present) {
			w := newWorkload(o)
			m.workloads = append(m.workloads, w)
			m.wlByNS[o.Namespace] = append(m.wlByNS[o.Namespace], w)
		}
		if o.Kind == "Service" && (o.APIVersion == "v1" || o.APIVersion == "") {
			m.services = append(m.services, newService(o))
		}
	}
	return m
}

// ownedInInput reports whether o's controller (or, for a Pod of a
// ReplicaSet, the Deployment that owns the ReplicaSet) is in the input.
func ownedInInput(o *Object, present map[Ref]bool) bool {
	for _, r := range List(o.Body, "metadata.ownerReferences") {
		kind, name := Str(r, "kind"), Str(r, "name")
		if present[Ref{Kind: kind, Namespace: o.Namespace, Name: name}] {
			return true
		}
		if kind == "ReplicaSet" {
			// <deployment>-<hash>
			if i := strings.LastIndexByte(name, '-'); i > 0 && present[Ref{Kind: "Deployment", Namespace: o.Namespace, Name: name[:i]}] {
				return true
			}
		}
		if kind == "Job" {
			if i := strings.LastIndexByte(name, '-'); i > 0 && present[Ref{Kind: "CronJob", Namespace: o.Namespace, Name: name[:i]}] {
				return true
			}
		}
	}
	return false
}

func podTemplatePath(kind string) string {
	switch kind {
	case "Pod":
		return ""
	case "CronJob":
		return "spec.jobTemplate.spec.template"
	default:
		return "spec.template"
	}
}

func newWorkload(o *Object) *Workload {
	tp := podTemplatePath(o.Kind)
	meta, spec := "metadata", "spec"
	if tp != "" {
		meta, spec = tp+".metadata", tp+".spec"
	}
	w := &Workload{
		Object:         o,
		PodLabels:      StringMap(o.Body, meta+".labels"),
		PodAnnotations: StringMap(o.Body, meta+".annotations"),
		ServiceAccount: Str(o.Body, spec+".serviceAccountName"),
	}
	if w.PodLabels == nil {
		w.PodLabels = map[string]string{}
	}
	if w.PodAnnotations == nil {
		w.PodAnnotations = map[string]string{}
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = Str(o.Body, spec+".serviceAccount")
	}
	if w.ServiceAccount == "" {
		w.ServiceAccount = "default"
	}
	w.PodRunAsUser = intPtr(Get(o.Body, spec+".securityContext.runAsUser"))
	for _, c := range List(o.Body, spec+".containers") {
		ct := Container{Name: Str(c, "name"), RunAsUser: intPtr(Get(c, "securityContext.runAsUser"))}
		for _, p := range List(c, "ports") {
			if n, err := strconv.Atoi(Str(p, "containerPort")); err == nil {
				ct.Ports = append(ct.Ports, n)
			}
		}
		w.Containers = append(w.Containers, ct)
	}
	return w
}

func intPtr(v any) *int64 {
	switch t := v.(type) {
	case int64:
		return &t
	case int:
		n := int64(t)
		return &n
	case float64:
		n := int64(t)
		return &n
	case string:
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return &n
		}
	}
	return nil
}

func newService(o *Object) *Service {
	s := &Service{Object: o, Selector: StringMap(o.Body, "spec.selector")}
	for _, p := range List(o.Body, "spec.ports") {
		port, _ := strconv.Atoi(Str(p, "port"))
		sp := ServicePort{Name: Str(p, "name"), Port: port, TargetPort: Str(p, "targetPort"), AppProtocol: Str(p, "appProtocol")}
		if sp.TargetPort == "" {
			sp.TargetPort = strconv.Itoa(port)
		}
		s.Ports = append(s.Ports, sp)
	}
	return s
}

// Kind returns the objects of a kind, in input order.
func (m *Model) Kind(kind string) []*Object { return m.byKind[kind] }

// KindAPI returns the objects of a kind whose apiVersion starts with group.
func (m *Model) KindAPI(kind, group string) []*Object {
	var out []*Object
	for _, o := range m.byKind[kind] {
		if strings.HasPrefix(o.APIVersion, group) {
			out = append(out, o)
		}
	}
	return out
}

// NamespaceNames lists every namespace the input mentions, sorted.
func (m *Model) NamespaceNames() []string { return m.nsNames }

// HasNamespaceObjects reports whether the input declares any Namespace, so
// that a rule may conclude a namespace does not exist.
func (m *Model) HasNamespaceObjects() bool { return len(m.namespaces) > 0 }

// Workloads returns every workload, in input order.
func (m *Model) Workloads() []*Workload { return m.workloads }

// WorkloadsIn returns the workloads of one namespace.
func (m *Model) WorkloadsIn(ns string) []*Workload { return m.wlByNS[ns] }

// Services returns every Service.
func (m *Model) Services() []*Service { return m.services }

// Memo caches a value computed once per model (an effective-state analysis
// several rules share). key is compared with ==: a string constant, or a
// pointer (a *Family) that stands for one computation.
func (m *Model) Memo(key any, f func() any) any {
	if v, ok := m.memo[key]; ok {
		return v
	}
	v := f()
	m.memo[key] = v
	return v
}

// Find returns the object with this identity, or nil.
func (m *Model) Find(kind, ns, name string) *Object {
	for _, o := range m.byKind[kind] {
		if o.Namespace == ns && o.Name == name {
			return o
		}
	}
	return nil
}

// MatchLabels reports whether every selector label is in labels. An empty
// selector matches everything.
func MatchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// MatchSelector evaluates a Kubernetes label selector (matchLabels and
// matchExpressions) held in sel against labels. A nil selector matches
// everything.
func MatchSelector(sel map[string]any, labels map[string]string) bool {
	if sel == nil {
		return true
	}
	if !MatchLabels(StringMap(sel, "matchLabels"), labels) {
		return false
	}
	for _, e := range List(sel, "matchExpressions") {
		key, op := Str(e, "key"), Str(e, "operator")
		vals := Strings(e, "values")
		v, has := labels[key]
		in := false
		for _, x := range vals {
			if x == v {
				in = true
			}
		}
		switch op {
		case "In":
			if !has || !in {
				return false
			}
		case "NotIn":
			if has && in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		}
	}
	return true
}
