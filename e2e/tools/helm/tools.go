//go:build tools

// Package tools pins helm, which e2e/cluster.sh builds.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
