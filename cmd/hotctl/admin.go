package main

import (
	"context"
	"net"
	"net/http"
	"time"
)

// adminClient is an HTTP client of the host's admin API and the base URL
// to call it at: the Unix socket, or addr on TCP when it is set.
func adminClient(socket, addr string, timeout time.Duration) (*http.Client, string) {
	client := &http.Client{Timeout: timeout}
	if addr != "" {
		return client, "http://" + addr
	}
	client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}
	return client, "http://hothost"
}
