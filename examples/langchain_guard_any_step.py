"""Guarding steps that are not DeAL — any LangChain runnable — with the same reward objects."""

from langchain_core.runnables import RunnableLambda

from deal_core.rewards import Inoffensive, Length
from langchain_deal import DeALLLM, RewardGuard, RewardGuardError

# Stand-ins for any other model or tool in a chain: a canned reply and a plain (greedy, reward-free) local LLM.
canned = RunnableLambda(lambda request: "Shut up, you worthless idiot." if "rude" in request else "Happy to help!")
plain_llm = DeALLLM(max_tokens=40, top_k=1)

reward = 0.8 * Inoffensive() + 0.2 * Length(max_words=30)  # rude words, not harm: see langchain_safety_chain
for request in ["Be rude to me.", "Be nice to me."]:
    try:
        print(request, "->", RewardGuard(canned, reward, threshold=0.6).invoke(request))
    except RewardGuardError as exc:
        print(request, "-> blocked:", exc)

guarded_llm = RewardGuard(plain_llm, reward, threshold=0.6, on_fail="retry", max_retries=1,
                          retry_kwargs={"top_k": 5, "rewards": [reward], "reward_weight": 5.0})
print("LLM ->", guarded_llm.invoke("Describe a sunny morning in two sentences."))
