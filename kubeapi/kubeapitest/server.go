// Package kubeapitest is an in-memory apiserver for tests of the code that
// calls knode's kubeapi client: /readyz, Nodes (get, JSON merge patch,
// delete) and server-side apply of any object, over TLS with client
// certificates, answering errors as the apiserver does (a metav1.Status).
// Patches are decoded strictly into the upstream types, so a field a client
// misspells fails the test. Only tests import it.
package kubeapitest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.dev/knode/kubeapi"
	"knode.dev/knode/pki"
)

// Applied is one server-side apply the server received.
type Applied struct {
	Path, FieldManager, User string
	Force                    bool
	Body                     []byte
}

// Server is a fake apiserver. Its fields are guarded by its lock: use the
// methods while requests may be in flight.
type Server struct {
	srv *httptest.Server
	ca  *pki.CA

	mu      sync.Mutex
	ready   bool
	nodes   map[string]*corev1.Node
	rv      int
	applied []Applied
	deleted []string
	// fail answers method+" "+path with a status code before anything else.
	fail map[string]int
	log  []string // "user method path" of every request
}

// New starts a server that is ready and holds no Node; it stops with the test.
func New(t testing.TB) *Server {
	t.Helper()
	ca, err := pki.NewCA("kubeapitest", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ca: ca, ready: true, nodes: map[string]*corev1.Node{}, fail: map[string]int{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// Client is a client of the server with a certificate for user (the
// common name the server records for each request).
func (s *Server) Client(user string) (*kubeapi.Client, error) {
	cred, err := pki.Issue(s.ca, pki.CertSpec{CommonName: user, Client: true}, time.Now())
	if err != nil {
		return nil, err
	}
	return kubeapi.New(s.srv.URL, s.caPEM(), cred.CertPEM, cred.KeyPEM)
}

func (s *Server) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// SetReady makes /readyz answer ok or 500.
func (s *Server) SetReady(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = ok
}

// Fail makes requests "METHOD /path" answer code (0: normally again).
func (s *Server) Fail(methodPath string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.fail, methodPath)
		return
	}
	s.fail[methodPath] = code
}

// Register adds a Node as its kubelet would, without a podCIDR.
func (s *Server) Register(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	n := &corev1.Node{}
	n.Name, n.ResourceVersion = name, strconv.Itoa(s.rv)
	s.nodes[name] = n
}

// Node returns a copy of the Node name, if it exists.
func (s *Server) Node(name string) (corev1.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return corev1.Node{}, false
	}
	return *n.DeepCopy(), true
}

// Applied lists the server-side applies received, in order.
func (s *Server) Applied() []Applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// Deleted lists the Nodes deleted, in order.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// Requests lists "user METHOD /path" of every request, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	user := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		user = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, user+" "+r.Method+" "+r.URL.Path)
	if code := s.fail[r.Method+" "+r.URL.Path]; code != 0 {
		writeStatus(w, code, http.StatusText(code))
		return
	}
	switch {
	case r.URL.Path == "/readyz" && r.Method == http.MethodGet:
		if !s.ready {
			http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	case r.Method == http.MethodPatch && r.Header.Get("Content-Type") == kubeapi.ApplyPatch:
		q := r.URL.Query()
		if q.Get("fieldManager") == "" {
			writeStatus(w, http.StatusBadRequest, "fieldManager is required for apply requests")
			return
		}
		s.applied = append(s.applied, Applied{Path: r.URL.Path, FieldManager: q.Get("fieldManager"), User: user,
			Force: q.Get("force") == "true", Body: body})
		w.Write(body)
	case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/"):
		s.node(w, r, strings.TrimPrefix(r.URL.Path, "/api/v1/nodes/"), body)
	default:
		writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
	}
}

// node serves one Node; called with the lock held.
func (s *Server) node(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	n, ok := s.nodes[name]
	if !ok {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("nodes %q not found", name))
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodDelete:
		delete(s.nodes, name)
		s.deleted = append(s.deleted, name)
	case http.MethodPatch:
		if ct := r.Header.Get("Content-Type"); ct != kubeapi.MergePatch {
			writeStatus(w, http.StatusUnsupportedMediaType, "the body of the request was in an unknown format: "+ct)
			return
		}
		var p corev1.Node
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			writeStatus(w, http.StatusBadRequest, "strict decoding error: "+err.Error())
			return
		}
		if p.ResourceVersion != "" && p.ResourceVersion != n.ResourceVersion {
			writeStatus(w, http.StatusConflict, fmt.Sprintf("Operation cannot be fulfilled on nodes %q: the object has been modified", name))
			return
		}
		if p.Spec.PodCIDR != "" && n.Spec.PodCIDR != "" && p.Spec.PodCIDR != n.Spec.PodCIDR {
			writeStatus(w, http.StatusUnprocessableEntity, fmt.Sprintf("Node %q is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid", name))
			return
		}
		mergeNode(n, p)
		s.rv++
		n.ResourceVersion = strconv.Itoa(s.rv)
	default:
		writeStatus(w, http.StatusMethodNotAllowed, r.Method)
		return
	}
	json.NewEncoder(w).Encode(n)
}

// mergeNode applies the fields of a merge patch knode sends.
func mergeNode(n *corev1.Node, p corev1.Node) {
	for k, v := range p.Labels {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
	if p.Spec.Taints != nil {
		n.Spec.Taints = p.Spec.Taints
	}
	if p.Spec.PodCIDR != "" {
		n.Spec.PodCIDR = p.Spec.PodCIDR
	}
	if p.Spec.PodCIDRs != nil {
		n.Spec.PodCIDRs = p.Spec.PodCIDRs
	}
}

// writeStatus answers code with a metav1.Status, as the apiserver does.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Message: msg, Reason: metav1.StatusReasonUnknown, Code: int32(code)}
	switch code {
	case http.StatusNotFound:
		st.Reason = metav1.StatusReasonNotFound
	case http.StatusConflict:
		st.Reason = metav1.StatusReasonConflict
	case http.StatusUnauthorized:
		st.Reason = metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		st.Reason = metav1.StatusReasonForbidden
	case http.StatusUnprocessableEntity:
		st.Reason = metav1.StatusReasonInvalid
	case http.StatusBadRequest:
		st.Reason = metav1.StatusReasonBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(st)
}

// PEMs are the server's trust root and a client credential for user, for a
// client made another way (kubeapi.New, a kubeconfig).
func (s *Server) PEMs(t testing.TB, user string) (ca, cert, key []byte) {
	t.Helper()
	cred, err := pki.Issue(s.ca, pki.CertSpec{CommonName: user, Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s.caPEM(), cred.CertPEM, cred.KeyPEM
}

// URL is the server's address (https://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }
