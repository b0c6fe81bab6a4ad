//go:build tools

// Package tools pins helm 4, which e2e/helm.sh builds (the chart's install/upgrade tests use it).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
