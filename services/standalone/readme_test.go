package main

import (
	"os"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// grpcurlCall matches a grpcurl call of the SyncService in a README: its body (-d '...')
// if any, and the method.
var grpcurlCall = regexp.MustCompile(`grpcurl -plaintext (?:-d '([^']*)' )?127\.0\.0\.1:50051 imapcopy\.v1\.SyncService/(\w+)`)

// The grpcurl calls of the READMEs a newcomer follows name existing methods, and their
// bodies are requests those methods accept, field for field (protojson refuses unknown
// fields and wrong enum names, as grpcurl does).
func TestREADMECalls(t *testing.T) {
	service := imapcopyv1.File_imapcopy_v1_sync_proto.Services().ByName("SyncService")
	for _, path := range []string{"../../README.md", "README.md"} {
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		calls := grpcurlCall.FindAllStringSubmatch(string(text), -1)
		seen := map[string]bool{}
		for _, c := range calls {
			body, method := c[1], c[2]
			seen[method] = true
			m := service.Methods().ByName(protoreflect.Name(method))
			if m == nil {
				t.Errorf("%s: grpcurl calls imapcopy.v1.SyncService/%s, which does not exist", path, method)
				continue
			}
			if body == "" {
				continue
			}
			req := dynamicpb.NewMessage(m.Input())
			if err := protojson.Unmarshal([]byte(body), req); err != nil {
				t.Errorf("%s: the body of %s does not parse as %s: %v\n%s", path, method, m.Input().FullName(), err, body)
			}
		}
		if path == "../../README.md" {
			for i := range service.Methods().Len() {
				if name := string(service.Methods().Get(i).Name()); !seen[name] {
					t.Errorf("%s: the quick start never calls %s", path, name)
				}
			}
		}
	}
}

// curlCall matches a curl call of the JSON/HTTP API in a README: the path and its body
// (-d '...') if any.
var curlCall = regexp.MustCompile(`curl -sN? (?:-X POST )?(?:-H '[^']*' )?'?http://127\.0\.0\.1:8080(/v1/[^ '\n]*)'?(?: -d '([^']*)')?`)

// The README's curl calls use the gateway's paths, together all of them, with bodies
// that the calls they reach accept, field for field.
func TestREADMECurlCalls(t *testing.T) {
	routes := []struct {
		re     *regexp.Regexp
		method string
	}{
		{regexp.MustCompile(`^/v1/providers(\?role=ACCOUNT_ROLE_\w+)?$`), "ListProviders"},
		{regexp.MustCompile(`^/v1/accounts:test$`), "TestAccount"},
		{regexp.MustCompile(`^/v1/syncs$`), "StartSync"},
		{regexp.MustCompile(`^/v1/syncs:plan$`), "PlanSync"},
		{regexp.MustCompile(`^/v1/syncs/[^/:]+@[^/:]+$`), "GetSyncStatus"},
		{regexp.MustCompile(`^/v1/syncs/[^/:]+@[^/:]+:watch$`), "WatchSyncStatus"},
		{regexp.MustCompile(`^/v1/syncs/[^/:]+@[^/:]+:cancel$`), "CancelSync"},
		{regexp.MustCompile(`^/v1/syncs\?[^ ]+$`), "ListSyncs"},
		{regexp.MustCompile(`^/v1/syncs/[^/:]+@[^/:]+:retry$`), "RetrySync"},
	}
	service := imapcopyv1.File_imapcopy_v1_sync_proto.Services().ByName("SyncService")
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range curlCall.FindAllStringSubmatch(string(text), -1) {
		path, body := c[1], c[2]
		method := ""
		for _, r := range routes {
			if r.re.MatchString(path) {
				method = r.method
			}
		}
		if method == "" {
			t.Errorf("README.md: curl calls %s, which is none of the API's paths", path)
			continue
		}
		seen[method] = true
		if body == "" {
			continue
		}
		req := dynamicpb.NewMessage(service.Methods().ByName(protoreflect.Name(method)).Input())
		if err := protojson.Unmarshal([]byte(body), req); err != nil {
			t.Errorf("README.md: the body sent to %s does not parse as %s: %v\n%s", path, req.Descriptor().FullName(), err, body)
		}
	}
	for _, r := range routes {
		if !seen[r.method] {
			t.Errorf("README.md: the curl sequence never calls %s", r.method)
		}
	}
}
