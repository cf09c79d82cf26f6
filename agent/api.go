package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"
)

// The local agent serves its status over a unix socket in the data directory
// (0600: only root, or the user that runs the agent, may ask).
type apiServer struct {
	srv *http.Server
	ln  net.Listener
}

func serveAPI(path string, a *Agent) (*apiServer, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("socket path %s is too long for a unix socket: use a shorter --data-dir", path)
	}
	// A socket left by a crashed agent is stale once nothing answers on it.
	if _, err := os.Stat(path); err == nil {
		if c, derr := net.DialTimeout("unix", path, 200*time.Millisecond); derr == nil {
			c.Close()
			return nil, fmt.Errorf("an agent is already running on %s: stop it first (systemctl stop knode, or end that process)", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("POST /v1/remove", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		// Remove stops this server: run it after the answer is sent.
		go a.Remove(10 * time.Second)
	})
	s := &apiServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *apiServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// ErrNoAgent says nothing answers on the data directory's socket.
var ErrNoAgent = errors.New("no knode agent is running")

// QueryStatus asks the agent listening on socket for its status.
func QueryStatus(ctx context.Context, socket string) (Status, error) {
	if _, err := os.Stat(socket); errors.Is(err, fs.ErrNotExist) {
		return Status{}, fmt.Errorf("%w here (%s does not exist): start one with `knode init` or `knode join`, or pass the node's --data-dir", ErrNoAgent, socket)
	}
	client := socketClient(socket)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://knode/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("%w on %s (%v): start it with `systemctl start knode` (see `journalctl -u knode` for why it stopped)", ErrNoAgent, socket, unwrapDial(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("agent on %s answered %s", socket, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("agent on %s sent an unreadable status: %w", socket, err)
	}
	return st, nil
}

// RequestRemove asks the agent on socket to leave the cluster for good
// (`knode reset`); it returns once the agent has left.
func RequestRemove(ctx context.Context, socket string) error {
	client := socketClient(socket)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://knode/v1/remove", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s: %v", ErrNoAgent, socket, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent on %s answered %s", socket, resp.Status)
	}
	// The agent leaves after answering; wait for its socket to close.
	for ctx.Err() == nil {
		c, err := net.DialTimeout("unix", socket, 200*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return ctx.Err()
}

// unwrapDial keeps the reason of a failed dial (connection refused) without
// net/http's request prefix.
func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// socketClient talks HTTP to the agent's unix socket.
func socketClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
}
