package deploy_test

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject that these
// manifests use, with KEDA's field names. Decoding is strict, so a field outside
// this subset fails the check: extend the type (from KEDA's API reference) when a
// manifest needs more, rather than importing KEDA's heavy API module.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       scaledObjectSpec  `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef  scaleTarget       `json:"scaleTargetRef"`
	PollingInterval *int32            `json:"pollingInterval,omitempty"`
	CooldownPeriod  *int32            `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32            `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32            `json:"maxReplicaCount,omitempty"`
	Advanced        *advancedConfig   `json:"advanced,omitempty"`
	Triggers        []scaleTriggers   `json:"triggers"`
	Fallback        *scaledObjectFall `json:"fallback,omitempty"`
}

type scaleTarget struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

type advancedConfig struct {
	HorizontalPodAutoscalerConfig *struct {
		Name     string                                         `json:"name,omitempty"`
		Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	} `json:"horizontalPodAutoscalerConfig,omitempty"`
	RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
}

type scaledObjectFall struct {
	FailureThreshold int32 `json:"failureThreshold"`
	Replicas         int32 `json:"replicas"`
}

// scaleTriggers: KEDA wants every metadata value as a string (its CRD schema says
// so), which map[string]string enforces here.
type scaleTriggers struct {
	Type       string            `json:"type"`
	Name       string            `json:"name,omitempty"`
	MetricType string            `json:"metricType,omitempty"`
	Metadata   map[string]string `json:"metadata"`
}
