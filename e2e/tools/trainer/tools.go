//go:build tools

// Package tools pins the Kubeflow Trainer controller, which e2e/cluster.sh builds when LOPPER_E2E_KUEUE=1.
package tools

import _ "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager"
