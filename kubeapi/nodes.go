package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// Readyz asks the apiserver's /readyz: nil when it answers ok.
func (c *Client) Readyz(ctx context.Context) error {
	return c.Call(ctx, http.MethodGet, "/readyz", "", nil, nil)
}

func nodePath(name string) string { return "/api/v1/nodes/" + url.PathEscape(name) }

// GetNode reads the Node name.
func (c *Client) GetNode(ctx context.Context, name string) (Node, error) {
	var n Node
	err := c.Call(ctx, http.MethodGet, nodePath(name), "", nil, &n)
	return n, err
}

// DeleteNode deletes the Node name (IsNotFound: there was none).
func (c *Client) DeleteNode(ctx context.Context, name string) error {
	return c.Call(ctx, http.MethodDelete, nodePath(name), "", nil, nil)
}

// PodCIDRPatch is a JSON merge patch setting a Node's pod CIDR (knode owns
// CIDRs: the controller-manager runs --allocate-node-cidrs=false).
type PodCIDRPatch struct {
	Spec struct {
		PodCIDR  string   `json:"podCIDR"`
		PodCIDRs []string `json:"podCIDRs"`
	} `json:"spec"`
}

// SetPodCIDR sets the Node name's podCIDR. IsNotFound: its kubelet has not
// registered it yet; IsInvalid: it holds another one, which the apiserver
// never lets change.
func (c *Client) SetPodCIDR(ctx context.Context, name, cidr string) error {
	var p PodCIDRPatch
	p.Spec.PodCIDR, p.Spec.PodCIDRs = cidr, []string{cidr}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode the podCIDR patch of Node %s: %w", name, err)
	}
	return c.Call(ctx, http.MethodPatch, nodePath(name), MergePatch, b, nil)
}
