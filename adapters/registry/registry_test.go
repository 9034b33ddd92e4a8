package registry

import (
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

func TestBuild(t *testing.T) {
	ps := []config.Provider{
		{Name: "tw", Type: "twilio", AuthToken: "t"},
		{Name: "vo", Type: "vonage", SignatureSecret: "s", SignatureMethod: "sha256"},
		{Name: "vm", Type: "vonage-messages", SignatureSecret: "s"},
		{Name: "pl", Type: "plivo", AuthToken: "t"},
		{Name: "tx", Type: "telnyx", PublicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
		{Name: "si", Type: "sinch", WebhookSecret: "s"},
		{Name: "bi", Type: "bird", SigningKey: "k"},
		{Name: "bw", Type: "bandwidth", Username: "u", Password: "p"},
		{Name: "ib", Type: "infobip", Username: "u", Password: "p"},
		{Name: "sg", Type: "smsgate", SigningKey: "k"},
		{Name: "sn", Type: "sns", TopicARNs: []string{"arn:aws:sns:us-east-1:1:t"}},
	}
	got, err := Build(ps, Env{})
	if err != nil || len(got) != 11 {
		t.Fatalf("Build = %v, %v", got, err)
	}
	for name, a := range got {
		if _, ok := a.(adapters.Signer); !ok {
			t.Errorf("%s cannot sign: sms simulate would not work for it", name)
		}
		if _, ok := a.(adapters.Resigner); !ok {
			t.Errorf("%s cannot re-sign: the conformance suite would not work for it", name)
		}
	}
}

func TestBuildJoinsErrors(t *testing.T) {
	_, err := Build([]config.Provider{
		{Name: "a", Type: "twilio"},
		{Name: "b", Type: "nope"},
	}, Env{})
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildPanicsOnDuplicate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	_, _ = Build([]config.Provider{{Name: "a", Type: "twilio", AuthToken: "t"}, {Name: "a", Type: "twilio", AuthToken: "t"}}, Env{})
}
