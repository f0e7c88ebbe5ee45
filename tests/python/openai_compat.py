"""Drives a running Sluice gateway with the official `openai` package.

Run by tests/tests/openai_python.rs with SLUICE_BASE_URL pointing at a
gateway whose upstreams are the e2e stub server. Exits non-zero on the first
failed check.
"""
import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SLUICE_BASE_URL"], api_key="unused", max_retries=0)
checks = 0


def check(name, cond, detail=""):
    global checks
    if not cond:
        print(f"FAILED: {name}: {detail}", file=sys.stderr)
        sys.exit(1)
    checks += 1


msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]

r = client.chat.completions.create(model="org/chat", messages=msgs, max_tokens=16, temperature=0.2)
check("chat content", r.choices[0].message.content == "echo: hello", r)
check("chat usage", r.usage.total_tokens == 7, r.usage)

stream = client.chat.completions.create(
    model="org/chat", messages=msgs, stream=True, stream_options={"include_usage": True}
)
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
check("stream text", text == "Hello world", text)
check("stream usage", usage is not None and usage.total_tokens == 7, usage)

# The guide's streaming helper, on a TGI-native target.
with client.chat.completions.stream(model="org/native", messages=msgs, max_tokens=8) as s:
    text = "".join(ev.delta for ev in s if ev.type == "content.delta")
check("native stream helper", text == "Hi there", text)

e = client.embeddings.create(model="org/fe", input="abcd")
check("embedding (base64 by default)", list(e.data[0].embedding) == [4.0, 0.5, -1.0], e.data[0].embedding)
e = client.embeddings.create(model="org/fe", input=["ab", "abc"], encoding_format="float")
check("embedding list", [d.embedding[0] for d in e.data] == [2.0, 3.0], e)

ids = [m.id for m in client.models.list()]
check("models", "org/chat" in ids and "native" in ids, ids)

try:
    client.chat.completions.create(model="no/such-model", messages=msgs)
    check("unknown model raises", False, "no exception")
except openai.NotFoundError as err:
    check("unknown model code", err.code == "model_not_found", err)

try:
    for _ in client.chat.completions.create(model="org/broken", messages=msgs, stream=True):
        pass
    check("broken stream raises", False, "stream ended cleanly")
except openai.APIError as err:
    check("broken stream message", "broken" in str(err), err)

print(f"python openai compat: {checks} passed, 0 failed")
