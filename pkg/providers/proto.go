package providers

import (
	"imapcopy.dev/pkg/imapconn"
	imapcopyv1 "imapcopy.dev/proto/gen/imapcopy/v1"
)

// Proto returns the preset as the API shows it. A preset without a fixed server has
// an empty host (the form asks for one), and port and security left at 0 and
// SECURITY_UNSPECIFIED when the customer must give them.
func (p Provider) Proto() *imapcopyv1.Provider {
	return &imapcopyv1.Provider{
		Id:           p.ID,
		DisplayName:  p.DisplayName,
		Host:         p.Host,
		Port:         uint32(p.Port),
		Security:     SecurityToProto(p.Security),
		Source:       p.Source,
		Destination:  p.Destination,
		Limits:       p.Limits.Proto(),
		Help:         p.Help,
		HostRequired: p.HostRequired(),
		Oauth2Only:   p.OAuth2Only,
	}
}

// Proto returns the limits as the API shows them.
func (l Limits) Proto() *imapcopyv1.ProviderLimits {
	return &imapcopyv1.ProviderLimits{
		MaxConnections:     uint32(l.MaxConnections),
		MaxMessageSize:     uint64(l.MaxMessageSize),
		DailyDownloadBytes: uint64(l.DailyDownloadBytes),
		DailyUploadBytes:   uint64(l.DailyUploadBytes),
	}
}

// ListProto is List as the ListProviders answer carries it.
func (c *Catalog) ListProto(role imapcopyv1.AccountRole) []*imapcopyv1.Provider {
	list := c.List(role)
	out := make([]*imapcopyv1.Provider, len(list))
	for i, p := range list {
		out[i] = p.Proto()
	}
	return out
}

// SecurityToProto converts an imapconn security to the API's; 0 gives
// SECURITY_UNSPECIFIED.
func SecurityToProto(s imapconn.Security) imapcopyv1.Security {
	switch s {
	case imapconn.SecurityTLS:
		return imapcopyv1.Security_SECURITY_TLS
	case imapconn.SecurityStartTLS:
		return imapcopyv1.Security_SECURITY_STARTTLS
	case imapconn.SecurityPlaintext:
		return imapcopyv1.Security_SECURITY_PLAINTEXT
	}
	return imapcopyv1.Security_SECURITY_UNSPECIFIED
}

// SecurityFromProto converts the API's security to imapconn's; false for
// SECURITY_UNSPECIFIED and unknown values.
func SecurityFromProto(s imapcopyv1.Security) (imapconn.Security, bool) {
	switch s {
	case imapcopyv1.Security_SECURITY_TLS:
		return imapconn.SecurityTLS, true
	case imapcopyv1.Security_SECURITY_STARTTLS:
		return imapconn.SecurityStartTLS, true
	case imapcopyv1.Security_SECURITY_PLAINTEXT:
		return imapconn.SecurityPlaintext, true
	}
	return 0, false
}
