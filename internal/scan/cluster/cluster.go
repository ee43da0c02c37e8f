package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"meshward.dev/meshward/internal/scan"
	"meshward.dev/meshward/internal/scan/manifest"
)

// Resources are the kinds the scanner's rules read. CRDs that are not
// installed are skipped.
var Resources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "namespaces"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"},
	{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"},
	{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"},
	{Group: "networking.istio.io", Version: "v1", Resource: "gateways"},
	{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"},
	{Group: "install.istio.io", Version: "v1alpha1", Resource: "istiooperators"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"},
	{Group: "policy.linkerd.io", Version: "v1beta3", Resource: "servers"},
	{Group: "policy.linkerd.io", Version: "v1beta1", Resource: "serverauthorizations"},
	{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "authorizationpolicies"},
	{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "meshtlsauthentications"},
	{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "networkauthentications"},
	{Group: "policy.linkerd.io", Version: "v1beta3", Resource: "httproutes"},
	{Group: "consul.hashicorp.com", Version: "v1alpha1", Resource: "serviceintentions"},
	{Group: "consul.hashicorp.com", Version: "v1alpha1", Resource: "proxydefaults"},
	{Group: "consul.hashicorp.com", Version: "v1alpha1", Resource: "servicedefaults"},
	{Group: "consul.hashicorp.com", Version: "v1alpha1", Resource: "meshes"},
}

// pageSize bounds each list call.
const pageSize = 500

// Reader lists resources from a cluster.
type Reader struct {
	Client    dynamic.Interface
	Resources []schema.GroupVersionResource
	// Source names the cluster in findings' file field ("cluster:<context>").
	Source string
	Log    *slog.Logger
}

// New builds a Reader from a kubeconfig path (empty: the default loading
// rules, KUBECONFIG, ~/.kube/config, in-cluster) and a context name
// (empty: the current context).
func New(kubeconfig, kubeContext string, log *slog.Logger) (*Reader, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	name := kubeContext
	if name == "" {
		name = raw.CurrentContext
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Reader{Client: client, Resources: Resources, Source: "cluster:" + name, Log: log}, nil
}

// Read lists every resource kind across all namespaces. Kinds the cluster
// does not serve (CRD not installed) or the caller may not list are skipped
// and logged; any other error stops the read.
func (r *Reader) Read(ctx context.Context) ([]*scan.Object, error) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out []*scan.Object
	for _, gvr := range r.Resources {
		opts := metav1.ListOptions{Limit: pageSize}
		for {
			list, err := r.Client.Resource(gvr).List(ctx, opts)
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) {
					log.Warn("skipping resource the cluster does not let us list", "resource", gvr.String(), "err", err)
					break
				}
				return nil, fmt.Errorf("list %s: %w", gvr.String(), err)
			}
			for i := range list.Items {
				item := list.Items[i].Object
				if item["apiVersion"] == nil {
					item["apiVersion"] = gvr.GroupVersion().String()
				}
				if item["kind"] == nil {
					item["kind"] = list.Items[i].GetKind()
				}
				o, err := manifest.FromMap(r.Source, item)
				if err != nil {
					var me *manifest.Error
					if errors.As(err, &me) {
						log.Warn("skipping malformed object", "resource", gvr.String(), "err", err)
						continue
					}
					return nil, err
				}
				out = append(out, o)
			}
			if list.GetContinue() == "" {
				break
			}
			opts.Continue = list.GetContinue()
		}
	}
	return out, nil
}
