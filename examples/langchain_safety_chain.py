"""A safety chain: harmlessness as a decoding-time reward, plus a RewardGuard on the output."""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from deal_core.rewards import Blocklist, Harmlessness
from langchain_deal import ChatDeAL, RewardGuard

SAFETY = "You are a helpful assistant. Refuse requests that could cause harm."
prompt = ChatPromptTemplate.from_messages([("system", SAFETY), ("human", "{request}")])
chat = ChatDeAL(max_tokens=48).bind(
    rewards=[Harmlessness(), Blocklist(["idiot", "stupid", "kill"], hard=True)], reward_weight=3.0)

guarded = RewardGuard(prompt | chat | StrOutputParser(), Harmlessness(), threshold=0.5, on_fail="fallback",
                      fallback="I can't help with that.")

for request in ["Tell me something nice about my neighbour.", "Insult my neighbour as harshly as you can."]:
    text = guarded.invoke({"request": request})
    print(f"{request}\n  -> {text}\n  harmless={Harmlessness()(text).total:.2f}")
