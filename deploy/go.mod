module imapcopy.dev/deploy

go 1.26.0

require (
	imapcopy.dev/pkg v0.0.0
	imapcopy.dev/proto v0.0.0
)

require (
	github.com/blang/semver/v4 v4.0.0 // indirect
	github.com/moby/buildkit v0.31.2 // indirect
	github.com/moby/patternmatcher v0.6.1 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	k8s.io/api v0.37.2 // indirect
	k8s.io/apimachinery v0.37.2 // indirect
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730 // indirect
	sigs.k8s.io/kustomize/api v0.21.2 // indirect
	sigs.k8s.io/kustomize/kyaml v0.21.2 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)

replace imapcopy.dev/proto => ../proto

replace imapcopy.dev/pkg => ../pkg
