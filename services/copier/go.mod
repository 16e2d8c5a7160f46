module imapcopy.dev/services/copier

go 1.26.0

require (
	imapcopy.dev/pkg v0.0.0
	imapcopy.dev/proto v0.0.0
)

replace imapcopy.dev/proto => ../../proto

replace imapcopy.dev/pkg => ../../pkg
