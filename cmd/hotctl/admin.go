package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// adminClient calls the host's admin API: on its Unix socket (only the
// host's user can open it), or on TCP with a bearer token.
type adminClient struct {
	http   *http.Client
	base   string // scheme and host the paths are appended to
	token  string
	socket string // "" on TCP
}

func newAdminClient(socket, addr, token string, timeout time.Duration) *adminClient {
	a := &adminClient{http: &http.Client{Timeout: timeout}, base: "http://" + addr, token: token}
	if addr == "" {
		a.base, a.socket = "http://hothost", socket
		a.http.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}
	}
	return a
}

// do sends one request; the caller closes the answer's body.
func (a *adminClient) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	var ne *net.OpError
	if errors.As(err, &ne) && a.socket != "" {
		err = fmt.Errorf("%w (is hothost running with its admin socket at %s?)", err, a.socket)
	}
	return resp, err
}

// call sends one request and returns the answer's body; an answer other
// than 2xx is an error carrying the host's own message.
func (a *adminClient) call(method, path string, body io.Reader) ([]byte, error) {
	resp, err := a.do(context.Background(), method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return b, nil
}
