"""Real ollama-python and openai-python calls against `llm-bench sim --api-key KEY`.

Run by tests/it/python_clients.rs with the simulator's URL and key; exits non-zero (with the
failed check's message) when a client cannot do what users do with a real server.
"""

import sys

import ollama
import openai

url, key = sys.argv[1], sys.argv[2]

# Ollama's routes stay open, as in Ollama: no key is sent.
o = ollama.Client(host=url)
embedded = o.embed(model="llm-bench-sim", input=["a cat", "a dog"])
assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 384, embedded
assert embedded.prompt_eval_count and embedded.prompt_eval_count >= 2, embedded
legacy = o.embeddings(model="llm-bench-sim", prompt="a cat")
assert legacy.embedding == embedded.embeddings[0], "the same text embeds the same"
shown = o.show("llm-bench-sim")
assert "embedding" in (shown.capabilities or []), shown
assert shown.modelinfo["general.architecture"] == "llama", shown.modelinfo
assert shown.details.format == "gguf", shown.details
chunks = list(o.chat(model="llm-bench-sim", messages=[{"role": "user", "content": "hi"}], stream=True))
assert chunks[-1].done and chunks[-1].eval_count, chunks[-1]
assert o.list().models, "tags"

c = openai.OpenAI(base_url=f"{url}/v1", api_key=key)
# openai-python asks for base64 unless told otherwise, and decodes it itself.
vectors = c.embeddings.create(model="llm-bench-sim", input=["a cat", "a dog"])
assert [len(d.embedding) for d in vectors.data] == [384, 384], vectors
assert abs(vectors.data[0].embedding[0] - embedded.embeddings[0][0]) < 1e-6, "same vector on both APIs"
floats = c.embeddings.create(model="llm-bench-sim", input="a cat", encoding_format="float", dimensions=16)
assert len(floats.data[0].embedding) == 16, floats
assert vectors.usage.prompt_tokens >= 2, vectors.usage
model = c.models.retrieve("llm-bench-sim")
assert model.id == "llm-bench-sim" and model.object == "model", model
assert [m.id for m in c.models.list()], "models"
try:
    c.models.retrieve("no-such-model")
    raise AssertionError("an unknown model must be 404")
except openai.NotFoundError:
    pass
stream = c.chat.completions.create(model="llm-bench-sim", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
parts = list(stream)
assert parts[-1].usage and parts[-1].usage.completion_tokens, parts[-1]
events = list(c.responses.create(model="llm-bench-sim", input="hi", stream=True, max_output_tokens=4))
kinds = [e.type for e in events]
assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert text and events[-1].response.output_text == text, (text, events[-1])
assert events[-1].response.usage.output_tokens == 4, events[-1].response.usage
whole = c.responses.create(model="llm-bench-sim", input=[{"role": "user", "content": "hi"}], max_output_tokens=3)
assert whole.output_text and whole.usage.output_tokens == 3, whole

# Every OpenAI route refuses a missing or wrong key with 401.
for bad in (openai.OpenAI(base_url=f"{url}/v1", api_key="wrong"),):
    for name, call in [
        ("models.list", lambda: bad.models.list()),
        ("models.retrieve", lambda: bad.models.retrieve("llm-bench-sim")),
        ("embeddings.create", lambda: bad.embeddings.create(model="llm-bench-sim", input="x")),
        ("chat.completions.create", lambda: bad.chat.completions.create(model="llm-bench-sim", messages=[{"role": "user", "content": "x"}])),
        ("completions.create", lambda: bad.completions.create(model="llm-bench-sim", prompt="x")),
        ("responses.create", lambda: bad.responses.create(model="llm-bench-sim", input="x")),
    ]:
        try:
            call()
            raise AssertionError(f"{name} answered without the right key")
        except openai.AuthenticationError as e:
            assert e.status_code == 401, (name, e)
print("real clients: ok")
