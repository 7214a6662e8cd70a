module github.com/hothost/hothost

go 1.26.0

toolchain go1.26.8

require (
	github.com/edsrzf/mmap-go v1.2.0
	github.com/hashicorp/go-version v1.9.0
	github.com/prometheus/client_golang v1.25.0
	golang.org/x/sys v0.49.0
	golang.org/x/tools v0.52.0
)

require (
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
