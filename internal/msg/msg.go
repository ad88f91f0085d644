// Package msg holds the content of a message as flows write it and channels send it.
// It is the vocabulary shared by the flow document and the channel adapters, so neither
// has to know the other.
package msg

// Content is what one outbound message carries. Exactly one of Text (optionally with
// Buttons), Media or Template is the main body; validation in package flow enforces it.
type Content struct {
	Text     string    `json:"text,omitempty"`
	Buttons  []Button  `json:"buttons,omitempty"`
	Media    *Media    `json:"media,omitempty"`
	Template *Template `json:"template,omitempty"`
	// Card is a rich card (RCS); WhatsApp renders it as media with a caption and buttons.
	Card *Card `json:"card,omitempty"`
}

// Button is a quick reply. ID is what comes back when the user taps it (WhatsApp reply id,
// RCS postback data); when empty, the title is used.
type Button struct {
	ID    string `json:"id,omitempty"`
	Title string `json:"title"`
}

// Media is an attachment sent by link.
type Media struct {
	Type     string `json:"type"` // image, video, audio, document
	URL      string `json:"url"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// Card is a standalone rich card.
type Card struct {
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	MediaURL    string   `json:"media_url,omitempty"`
	Buttons     []Button `json:"buttons,omitempty"`
}

// Template is a WhatsApp message template in the Graph API's own shape, so a template
// copied from Meta's or Engati's documentation works unchanged.
type Template struct {
	Name       string           `json:"name"`
	Namespace  string           `json:"namespace,omitempty"`
	Language   TemplateLang     `json:"language"`
	Components []map[string]any `json:"components,omitempty"`
}

// TemplateLang is the template's language and language policy ("deterministic").
type TemplateLang struct {
	Code   string `json:"code"`
	Policy string `json:"policy,omitempty"`
}

// Kind names the message's main body for storage and the conversations API.
func (c Content) Kind() string {
	switch {
	case c.Template != nil:
		return "template"
	case c.Card != nil:
		return "card"
	case c.Media != nil:
		return c.Media.Type
	case len(c.Buttons) > 0:
		return "buttons"
	default:
		return "text"
	}
}

// Summary is a one-line text for the conversation history: the text, else the caption,
// the card title or the template name.
func (c Content) Summary() string {
	switch {
	case c.Text != "":
		return c.Text
	case c.Media != nil && c.Media.Caption != "":
		return c.Media.Caption
	case c.Card != nil:
		return c.Card.Title
	case c.Template != nil:
		return c.Template.Name
	}
	return ""
}
