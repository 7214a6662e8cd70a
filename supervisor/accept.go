package supervisor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor accepts with accept4 on the listener's descriptor instead
// of net.Listener.Accept: a *net.TCPConn would register each connection
// with the supervisor's netpoller, which would then wake for every request
// a client sends, though the supervisor never reads one. A raw descriptor
// costs nothing until it is handed over.

func (s *Supervisor) acceptLoop() {
	for {
		fd, remote, err := s.accept()
		switch {
		case err == nil:
		case s.lnClosed.Load():
			return
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE), errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.ENOMEM):
			s.log.Error("accept: out of resources; clients wait in the backlog", "err", err)
			time.Sleep(50 * time.Millisecond) // nothing to wait on: the resource frees at no signal
			continue
		default: // ECONNABORTED and friends: that client is gone
			s.log.Debug("accept", "err", err)
			continue
		}
		select {
		case s.events <- accepted{fd: fd, remote: remote}:
		case <-s.stopped:
			unix.Close(fd)
			return
		}
	}
}

// accept takes one connection from the listener, close-on-exec (no worker
// inherits another's clients) and with the options net.Listen would set.
func (s *Supervisor) accept() (int, string, error) {
	var (
		fd   int
		sa   unix.Sockaddr
		aerr error
	)
	err := s.raw.Read(func(lfd uintptr) bool {
		fd, sa, aerr = unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN
	})
	if err != nil {
		return -1, "", err
	}
	if aerr != nil {
		return -1, "", fmt.Errorf("supervisor: accept: %w", aerr)
	}
	// Go's defaults for a TCP connection: no Nagle delay, keepalive probes
	// every 15s, so a vanished client's descriptor is not held for ever.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	return fd, sockaddrString(sa), nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a = a.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(a, uint16(sa.Port)).String()
	}
	return "unknown"
}
