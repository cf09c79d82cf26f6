package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrUnreachable wraps every failure to get an answer from the apiserver
// (refused, reset, timed out, TLS): nothing was decided by the server.
var ErrUnreachable = errors.New("apiserver unreachable")

// Error is an answer of the apiserver outside 2xx, with the reason and
// message of its Status object when it sent one.
type Error struct {
	Method, Path string
	Code         int
	// Reason is the Status reason ("NotFound", "Conflict", "Invalid", ...);
	// Message the server's explanation.
	Reason, Message string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Code)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// status is the part of metav1.Status an error reads.
type status struct {
	Kind    string `json:"kind"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// newError reads a non-2xx answer: a Status object's reason and message,
// else the start of the body as the message (/readyz answers text).
func newError(method, path string, code int, body []byte) *Error {
	e := &Error{Method: method, Path: path, Code: code}
	var st status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		e.Reason, e.Message = st.Reason, st.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	e.Message = msg
	return e
}

func hasCode(err error, codes ...int) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

// IsNotFound reports an answer 404: the object does not exist.
func IsNotFound(err error) bool { return hasCode(err, http.StatusNotFound) }

// IsConflict reports an answer 409: the object changed meanwhile, or a
// server-side apply met another manager's field.
func IsConflict(err error) bool { return hasCode(err, http.StatusConflict) }

// IsUnauthorized reports an answer 401 (the credential is not accepted) or
// 403 (it is, but may not do this).
func IsUnauthorized(err error) bool {
	return hasCode(err, http.StatusUnauthorized, http.StatusForbidden)
}

// IsInvalid reports an answer 422: the server refused the object's content.
func IsInvalid(err error) bool { return hasCode(err, http.StatusUnprocessableEntity) }

// IsUnreachable reports that no answer came.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }
