// Package slack delivers chatwarden's alerts to Slack: Block Kit rendering,
// the slack-go client behind alert.Poster, and the interactivity endpoint
// that verifies Slack's request signatures. It is the only package that
// imports slack-go.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
)

// Client posts, updates and finds alert messages with slack-go.
type Client struct {
	api *slack.Client
	log *slog.Logger
}

var _ alert.Poster = (*Client)(nil)

// readSecret returns value, or the trimmed contents of file.
func readSecret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Token returns the configured bot token ("" when Slack is off).
func Token(c alert.SlackConfig) (string, error) {
	t, err := readSecret(c.Token, c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("alert.slack.token_file: %w", err)
	}
	return t, nil
}

// SigningSecret returns the configured signing secret.
func SigningSecret(c alert.SlackConfig) (string, error) {
	s, err := readSecret(c.SigningSecret, c.SigningSecretFile)
	if err != nil {
		return "", fmt.Errorf("alert.slack.signing_secret_file: %w", err)
	}
	return s, nil
}

// New returns a client for the configured workspace. It returns nil and no
// error when no token is configured (Slack is off).
func New(c alert.SlackConfig, log *slog.Logger) (*Client, error) {
	token, err := Token(c)
	if err != nil || token == "" {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: timeout})}
	if c.APIURL != "" {
		u := c.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	// No slack-go retries: the dispatcher retries, honouring Retry-After per
	// channel and recording what was sent.
	return &Client{api: slack.New(token, opts...), log: log}, nil
}

func msgOptions(m *alert.Message) []slack.MsgOption {
	blocks, text := Render(m)
	return []slack.MsgOption{
		slack.MsgOptionBlocks(blocks...),
		slack.MsgOptionText(text, false),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: MetadataEventType,
			EventPayload: map[string]any{"message_id": m.ID}}),
	}
}

// Post implements alert.Poster.
func (c *Client) Post(ctx context.Context, channel string, m *alert.Message) (string, string, error) {
	ch, ts, err := c.api.PostMessageContext(ctx, channel, msgOptions(m)...)
	if err != nil {
		return "", "", classify(err)
	}
	return ch, ts, nil
}

// Update implements alert.Poster.
func (c *Client) Update(ctx context.Context, channelID, ts string, m *alert.Message) error {
	if _, _, _, err := c.api.UpdateMessageContext(ctx, channelID, ts, msgOptions(m)...); err != nil {
		return classify(err)
	}
	return nil
}

// findPages bounds a look-up: 5 pages of 200 messages.
const findPages = 5

// Find implements alert.Poster: it reads channel's history since since and
// returns the message whose metadata or first block carries messageID.
func (c *Client) Find(ctx context.Context, channel, messageID string, since time.Time) (string, string, error) {
	p := &slack.GetConversationHistoryParameters{ChannelID: channel, Limit: 200, IncludeAllMetadata: true,
		Oldest: fmt.Sprintf("%d.000000", since.Unix())}
	for page := 0; page < findPages; page++ {
		resp, err := c.api.GetConversationHistoryContext(ctx, p)
		if err != nil {
			return "", "", classify(err)
		}
		for _, msg := range resp.Messages {
			if carries(&msg, messageID) {
				return channel, msg.Timestamp, nil
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			break
		}
		p.Cursor = resp.ResponseMetaData.NextCursor
	}
	return "", "", nil
}

func carries(msg *slack.Message, id string) bool {
	if msg.Metadata.EventType == MetadataEventType {
		if v, ok := msg.Metadata.EventPayload["message_id"].(string); ok && v == id {
			return true
		}
	}
	return len(msg.Blocks.BlockSet) > 0 && msg.Blocks.BlockSet[0].ID() == BlockIDPrefix+id
}

// classify maps slack-go errors to *alert.DeliveryError: a 429 carries its
// Retry-After; an answer from Slack (an HTTP 4xx or ok=false) means nothing
// was posted; a timeout, broken connection or 5xx leaves it uncertain.
func classify(err error) error {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return &alert.DeliveryError{Err: err, RetryAfter: rl.RetryAfter, NotSent: true}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return &alert.DeliveryError{Err: err, NotSent: sc.Code >= 400 && sc.Code < 500}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return &alert.DeliveryError{Err: err, NotSent: true}
	}
	return &alert.DeliveryError{Err: err}
}
