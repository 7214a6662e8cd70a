// Package deploy holds no code: it is the home of hothost's deployment files
// and of the tests that keep them true.
//
//	../Dockerfile                 one builder image builds the host and its plugins
//	systemd/run-hothost.mount     the tmpfs that holds the player state across restarts
//	systemd/hothost.service       the host under systemd: restart policy, SIGTERM drain
//	systemd/hothost.sysusers      the system user it runs as
//	kubernetes/hothost.yaml       a StatefulSet, one shard per pod
//	grafana/hothost.json          a dashboard of the host's Prometheus metrics
//
// The tests check these offline (the manifests decode strictly into the
// Kubernetes API types, the units pass systemd-analyze verify, the
// Dockerfile parses and builds through Makefile targets) and against the
// real host built by those targets: every flag the files pass exists, the
// probe and preStop commands work on a running host, and every metric the
// dashboard queries is on its /metrics.
//
// deploy is a module of its own so that the Kubernetes, Prometheus and
// Dockerfile parsers it tests with never become dependencies of the host.
// It must never hold code that the host or a plugin imports.
package deploy
