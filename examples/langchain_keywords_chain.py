"""A prompt | ChatDeAL.bind(rewards=[Keywords(...)]) | StrOutputParser chain, greedy vs aligned."""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from deal_core.rewards import Keywords
from langchain_deal import ChatDeAL

words = ["climb", "talk", "wall"]
prompt = ChatPromptTemplate.from_messages([("human", "Write one sentence that uses all of these words: {words}.")])
chat = ChatDeAL(max_tokens=48)

plain = prompt | chat | StrOutputParser()
aligned = prompt | chat.bind(rewards=[Keywords(words)], top_k=10, lookahead=10, reward_weight=5.0) | StrOutputParser()

question = {"words": ", ".join(words)}
coverage = Keywords(words)
for name, chain in [("greedy", plain), ("DeAL", aligned)]:
    text = chain.invoke(question)
    print(f"{name:>6}: {text}  (coverage {coverage(text).total:.2f})")
