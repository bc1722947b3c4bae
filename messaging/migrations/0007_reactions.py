"""Reactions: one row per (message, user, emoji); the emoji compared byte for byte."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0006_edit_reply_mentions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Reaction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('message_id', models.BigIntegerField()),
                ('emoji', models.CharField(db_collation='utf8mb4_bin', max_length=32)),
                ('position', models.PositiveSmallIntegerField()),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'message_reactions',
                'constraints': [models.UniqueConstraint(fields=('message_id', 'user', 'emoji'), name='reaction_msg_user_emoji_uniq')],
            },
        ),
    ]
