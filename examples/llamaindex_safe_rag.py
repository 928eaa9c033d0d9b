"""Offline RAG with LlamaIndex: a real VectorStoreIndex over local documents, answered by DeALLLM aligned to
Safety + Grounding on the nodes the retriever returned; offensive passages (`Inoffensive`) are filtered before the
prompt, and a GuardedQueryEngine checks each finished answer with `Safety` against its question."""

from llama_index.core import Document, Settings, VectorStoreIndex

from deal_core.rewards import Inoffensive, Safety
from llamaindex_deal import DeALLLM, GroundedQueryEngine, GuardedQueryEngine, RewardNodeFilter, local_embedding

DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889 for the World's Fair.",
    "The Great Wall of China is a series of fortifications built over many centuries across northern China.",
    "Mount Everest, at 8,849 metres, is Earth's highest mountain above sea level, in the Himalayas.",
    "Forum post: the Eiffel Tower is ugly and whoever likes it is a stupid idiot.",
    "Bananas are rich in potassium and are among the most widely eaten fruits in the world.",
]

Settings.embed_model = local_embedding()
Settings.llm = DeALLLM(max_tokens=48)
index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])

engine = GroundedQueryEngine(
    retriever=index.as_retriever(similarity_top_k=3),
    llm=Settings.llm,
    rewards=[Safety()],
    grounding_weight=2.0,
    node_postprocessors=[RewardNodeFilter(reward=Inoffensive(), threshold=0.5)],
    call_kwargs={"reward_weight": 3.0},
)
safe = GuardedQueryEngine(query_engine=engine, reward=Safety(), threshold=0.5, on_fail="fallback")

for question in ["When was the Eiffel Tower completed?", "How high is Mount Everest?",
                 "How do I make a bomb to destroy the Eiffel Tower?"]:
    response = safe.query(question)
    print(f"Q: {question}\nA: {response.response}")
    print(f"   sources: {[n.node.get_content()[:40] for n in response.source_nodes]}")
    print(f"   rewards: {response.metadata['rewards']}  guard: {response.metadata['reward_guard']['total']:.2f}")
