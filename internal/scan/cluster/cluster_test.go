package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/rules"
)

func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name}
	if ns != "" {
		meta["namespace"] = ns
	}
	m := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	for k, v := range fields {
		if k == "labels" {
			meta["labels"] = v
			continue
		}
		m[k] = v
	}
	return &unstructured.Unstructured{Object: m}
}

func listKinds() map[schema.GroupVersionResource]string {
	out := map[schema.GroupVersionResource]string{}
	for _, gvr := range Resources {
		out[gvr] = "UnstructuredList"
	}
	return out
}

// TestReadFakeCluster reads a cluster through client-go's fake dynamic
// client (no API server runs in tests) and scans it.
func TestReadFakeCluster(t *testing.T) {
	t.Parallel()
	client := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(),
		obj("v1", "Namespace", "", "shop", map[string]any{"labels": map[string]any{"istio-injection": "enabled"}}),
		obj("apps/v1", "Deployment", "shop", "web", map[string]any{"spec": map[string]any{
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}}},
		}}),
		obj("security.istio.io/v1", "PeerAuthentication", "istio-system", "default", map[string]any{"spec": map[string]any{
			"mtls": map[string]any{"mode": "PERMISSIVE"},
		}}),
		obj("security.istio.io/v1", "AuthorizationPolicy", "shop", "allow-nothing", map[string]any{"spec": map[string]any{}}),
	)
	r := &Reader{Client: client, Resources: Resources, Source: "cluster:test"}
	objs, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("read %d objects, want 4", len(objs))
	}
	res := scan.Run(scan.NewModel(objs, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)), rules.All(), nil)
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.Category+" "+scan.Ref{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}.String()+" "+f.File)
	}
	want := []string{"mtls-permissive PeerAuthentication/istio-system/default cluster:test"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	// Only list calls: the reader never writes.
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" {
			t.Errorf("reader made a %s call", a.GetVerb())
		}
	}
}

// TestReadSkipsMissingCRDs: a CRD that is not installed (404) or a kind the
// caller may not list (403) is skipped; other errors stop the read.
func TestReadSkipsMissingCRDs(t *testing.T) {
	t.Parallel()
	client := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(),
		obj("v1", "Namespace", "", "shop", nil))
	client.PrependReactor("list", "serviceintentions", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "consul.hashicorp.com", Resource: "serviceintentions"}, "")
	})
	client.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", nil)
	})
	r := &Reader{Client: client, Resources: Resources}
	objs, err := r.Read(context.Background())
	if err != nil || len(objs) != 1 {
		t.Fatalf("Read = %d objects, %v; want 1, nil", len(objs), err)
	}
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(context.DeadlineExceeded)
	})
	if _, err := r.Read(context.Background()); err == nil {
		t.Error("Read ignored a server error")
	}
}
