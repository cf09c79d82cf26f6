// Package kubeapi is a small typed REST client for the few apiserver calls
// knode itself makes (its waits, health checks and cluster chores), with the
// credential a knode kubeconfig embeds. It decodes into the fields knode
// reads, so that the binary does not link client-go's generated types.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"knode.dev/knode/manifests"
)

// Client talks to one apiserver with one client certificate.
type Client struct {
	server string
	http   *http.Client
}

// FromKubeconfig reads a kubeconfig with embedded credentials.
func FromKubeconfig(path string) (*Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kc, err := manifests.ParseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := New(kc.Server, kc.CAPEM, kc.CertPEM, kc.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// New is a client for server (https://...) that verifies its certificate
// against caPEM and presents certPEM/keyPEM.
func New(server string, caPEM, certPEM, keyPEM []byte) (*Client, error) {
	if !strings.HasPrefix(server, "https://") {
		return nil, fmt.Errorf("server %q is not https", server)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client credential: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	return &Client{server: strings.TrimSuffix(server, "/"), http: &http.Client{Transport: tr, Timeout: 5 * time.Second}}, nil
}

// Server is the apiserver's URL.
func (c *Client) Server() string { return c.server }

// Get fetches path and decodes a 200 answer into v (when not nil).
func (c *Client) Get(ctx context.Context, path string, v any) (int, error) {
	return c.Do(ctx, http.MethodGet, path, "", nil, v)
}

// Do sends a request with a JSON body (nil: none) of the given content type
// and decodes a 2xx answer into v (when not nil). It returns the HTTP status:
// a non-2xx status is not an error, the caller decides what it means.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body, v any) (int, error) {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		raw = b
	}
	code, err := c.send(ctx, method, path, contentType, raw, v)
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return code, nil
	}
	var uerr interface{ Unwrap() error }
	if code == 0 && errors.As(err, &uerr) {
		err = uerr.Unwrap()
	}
	return code, err
}

// Call sends a request with body (nil: none) of the given content type and
// decodes a 2xx answer into out (when not nil). Any other answer is an
// *Error (see IsNotFound, IsConflict, IsUnauthorized, IsInvalid); no answer
// is an error wrapping ErrUnreachable.
func (c *Client) Call(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	code, err := c.send(ctx, method, path, contentType, body, out)
	if code == 0 && err != nil {
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrUnreachable, err)
	}
	return err
}

// maxErrorBody bounds how much of a non-2xx answer is read.
const maxErrorBody = 64 << 10

// send returns the answer's status (0: none came, err says why); a non-2xx
// answer is an *Error, a 2xx one is decoded into out.
func (c *Client) send(ctx context.Context, method, path, contentType string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return resp.StatusCode, newError(method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }
