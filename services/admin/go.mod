module imapcopy.dev/services/admin

go 1.26.0

require (
	google.golang.org/grpc v1.85.0
	imapcopy.dev/pkg v0.0.0
	imapcopy.dev/proto v0.0.0
)

require (
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.34.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20261110000943-09e21b237f2c // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261104224025-d1e00e9f33ab // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace imapcopy.dev/proto => ../../proto

replace imapcopy.dev/pkg => ../../pkg
