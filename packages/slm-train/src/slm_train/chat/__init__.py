"""Chat models: the conversations they learn from, and how well they talk.

- `conversations.py`: reading people's conversation files (OpenAI, ShareGPT, Alpaca).

The fine-tuning itself is `slm_train.finetune.chat`; the format (ChatML) and its
one renderer are `slm_tokenizer.chat`.
"""
