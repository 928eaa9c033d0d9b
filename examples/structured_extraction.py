"""Structured extraction with the embedded model: the answer always parses and validates against the schema,
because the search only writes JSON the schema allows (LangChain and LlamaIndex)."""

from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel, Field

from langchain_deal import ChatDeAL
from llamaindex_deal import DeALLLM


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")
    city: str = Field(description="Where the person lives")


TEXT = "Alice is 31 years old and lives in Oslo."


def main() -> None:
    chat = ChatDeAL(max_tokens=48)
    print("langchain json_schema      ", chat.with_structured_output(Person).invoke(f"Extract the person: {TEXT}"))
    calls = chat.with_structured_output(Person, method="function_calling")
    print("langchain function_calling ", calls.invoke(f"Extract the person: {TEXT}"))
    llm = DeALLLM(max_tokens=48)
    print("llamaindex structured_predict",
          llm.structured_predict(Person, PromptTemplate("Extract the person: {text}"), text=TEXT))


if __name__ == "__main__":
    main()
