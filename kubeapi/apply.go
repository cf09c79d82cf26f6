package kubeapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"knode.dev/knode/manifests"
)

// FieldManager is the name knode's server-side applies own their fields
// under (`kubectl get -o yaml --show-managed-fields` shows it).
const FieldManager = "knode"

// ApplyPatch is the content type of a server-side apply.
const ApplyPatch = "application/apply-patch+yaml"

// resource is the REST resource of the kinds knode applies, and whether it
// is namespaced; ok is false for any other kind.
func resource(kind string) (plural string, namespaced, ok bool) {
	switch kind {
	case "ServiceAccount", "ConfigMap", "Service", "Deployment":
		return strings.ToLower(kind) + "s", true, true
	case "ClusterRole", "ClusterRoleBinding":
		return strings.ToLower(kind) + "s", false, true
	}
	return "", false, false
}

// ObjectPath is the REST path of o: /api/v1/... for the core group,
// /apis/<group>/<version>/... for the others.
func ObjectPath(o manifests.Object) (string, error) {
	plural, namespaced, ok := resource(o.Kind)
	switch {
	case !ok:
		return "", fmt.Errorf("apply %s %q: kind not known to knode's client", o.Kind, o.Name)
	case o.Name == "":
		return "", fmt.Errorf("apply %s: no name", o.Kind)
	case namespaced != (o.Namespace != ""):
		return "", fmt.Errorf("apply %s %q: namespace %q does not fit the kind's scope", o.Kind, o.Name, o.Namespace)
	}
	p := "/api/" + o.APIVersion
	if strings.Contains(o.APIVersion, "/") {
		p = "/apis/" + o.APIVersion
	}
	if namespaced {
		p += "/namespaces/" + url.PathEscape(o.Namespace)
	}
	return p + "/" + plural + "/" + url.PathEscape(o.Name), nil
}

// Apply creates or updates o by server-side apply as FieldManager, forcing
// conflicts: knode owns the objects it renders, so a field another manager
// changed is set back, as `kubectl apply` did before.
func (c *Client) Apply(ctx context.Context, o manifests.Object) error {
	p, err := ObjectPath(o)
	if err != nil {
		return err
	}
	q := url.Values{"fieldManager": {FieldManager}, "force": {"true"}}
	if err := c.Call(ctx, http.MethodPatch, p+"?"+q.Encode(), ApplyPatch, o.YAML, nil); err != nil {
		return fmt.Errorf("apply %s %s: %w", o.Kind, objectName(o), err)
	}
	return nil
}

func objectName(o manifests.Object) string {
	if o.Namespace == "" {
		return o.Name
	}
	return o.Namespace + "/" + o.Name
}
