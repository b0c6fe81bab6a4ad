//go:build tools

// Package tools pins the JobSet controller, which e2e/cluster.sh builds when LOPPER_E2E_KUEUE=1.
package tools

import _ "sigs.k8s.io/jobset"
