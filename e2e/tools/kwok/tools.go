//go:build tools

// Package tools pins kwok, which e2e/cluster.sh builds.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
