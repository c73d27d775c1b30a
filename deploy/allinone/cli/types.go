package cli

import (
	"strings"
	"time"
)

// The API's objects, as much of them as the tables show (docs/rest.md; --json prints them
// whole).
type (
	project struct {
		ID             string     `json:"id"`
		Name           string     `json:"name"`
		Environments   []string   `json:"environments"`
		AllowedOrigins []string   `json:"allowed_origins"`
		CreatedAt      *time.Time `json:"created_at"`
	}
	key struct {
		ID            string     `json:"id"`
		Type          string     `json:"type"`
		Name          string     `json:"name"`
		DisplayPrefix string     `json:"display_prefix"`
		ProjectID     string     `json:"project_id"`
		Environment   string     `json:"environment"`
		Capabilities  []string   `json:"capabilities"`
		Status        string     `json:"status"`
		CreatedAt     *time.Time `json:"created_at"`
		ExpiresAt     *time.Time `json:"expires_at"`
		RevokedAt     *time.Time `json:"revoked_at"`
		RevokeReason  string     `json:"revoke_reason"`
		GraceUntil    *time.Time `json:"grace_until"`
		RotatedToID   string     `json:"rotated_to_id"`
		LastUsedAt    *time.Time `json:"last_used_at"`
		ServerID      string     `json:"server_id"`
		ExposedAt     *time.Time `json:"exposed_at"`
	}
	server struct {
		ID               string     `json:"id"`
		Name             string     `json:"name"`
		Hostname         string     `json:"hostname"`
		Tags             []string   `json:"tags"`
		ProjectID        string     `json:"project_id"`
		KeyID            string     `json:"key_id"`
		APIKey           string     `json:"api_key"`
		KeyDisplayPrefix string     `json:"key_display_prefix"`
		KeyStatus        string     `json:"key_status"`
		CreatedAt        *time.Time `json:"created_at"`
		DeletedAt        *time.Time `json:"deleted_at"`
	}
	auditEvent struct {
		ID    string     `json:"id"`
		Time  *time.Time `json:"time"`
		Actor *struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"actor"`
		KeyID        string `json:"key_id"`
		Action       string `json:"action"`
		ResourceType string `json:"resource_type"`
		ResourceID   string `json:"resource_id"`
		Result       string `json:"result"`
		RequestID    string `json:"request_id"`
		ClientIP     string `json:"client_ip"`
	}
	receipt struct {
		GatewaysLive    int  `json:"gateways_live"`
		GatewaysApplied int  `json:"gateways_applied"`
		Complete        bool `json:"complete"`
		WaitedMS        int  `json:"waited_ms"`
	}
)

// prefix shows a display prefix as the start of a longer key.
func prefix(p string) string {
	if p == "" {
		return ""
	}
	return p + "…"
}

func list(s []string) string { return strings.Join(s, ",") }
